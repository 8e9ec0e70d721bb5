"""Interrupted captures: killed processes, exceptions, a full disk; all resume to the same store."""

from __future__ import annotations

import errno
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from workbench.errors import InputError, StoreIncompleteError, StoreWriteError
from workbench.store import ActivationStore, StoreWriter
from workbench.store import files as store_files

SITE_A, SITE_B = "blocks.0.hook_resid_post", "blocks.1.mlp.hook_post"


def _assert_same_store(got: ActivationStore, want: ActivationStore) -> None:
    assert got.n_rows == want.n_rows and got.n_examples == want.n_examples
    for site in want.sites:
        np.testing.assert_array_equal(got.read(site), want.read(site))
        for key, value in want.stats(site).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(got.stats(site)[key], value)
            else:
                assert got.stats(site)[key] == value, key
    for getter in ("token_ids", "example_index", "positions"):
        np.testing.assert_array_equal(getattr(got, getter)(), getattr(want, getter)())
    for name, labels in want.row_labels().items():
        np.testing.assert_array_equal(got.row_labels()[name], labels)
    for name, labels in want.example_labels().items():
        np.testing.assert_array_equal(got.example_labels()[name], labels)
    # the bytes are identical too: same checksums chunk by chunk
    files = [c["files"] for c in got.manifest["chunks"]]
    assert files == [c["files"] for c in want.manifest["chunks"]]


def _data_files(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_resume_after_simulated_kill(tmp_path, make_chunks, write_store, spec_for):
    chunks = make_chunks(n_chunks=4)
    reference = write_store(tmp_path / "ref", chunks)
    path = tmp_path / "s"
    writer = StoreWriter(path, spec_for())
    for chunk in chunks[:2]:
        writer.append(**chunk)
    del writer  # dropped without finalize, as a killed process would
    gc.collect()
    # debris a kill can leave: a half-written shard, an uncommitted chunk, a stats file
    shard = path / "sites" / SITE_A / "chunk_000001.npy"
    debris = [
        path / "sites" / SITE_A / "chunk_000002.npy.tmp",
        path / "sites" / SITE_A / "chunk_000002.npy",
        path / "rows" / "token_ids" / "chunk_000002.npy",
        path / "stats" / "stats_000002.npz",
        path / "manifest.json.tmp",
    ]
    for file in debris:
        file.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(StoreIncompleteError, match="re-run the same capture command to resume"):
        ActivationStore(path)

    resumed = StoreWriter(path, spec_for())
    assert resumed.resume_point == 10 and resumed.n_chunks == 2
    assert not any(file.exists() for file in debris)
    for chunk in chunks[2:]:
        resumed.append(**chunk)
    _assert_same_store(resumed.finalize(), reference)


CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    import numpy as np
    from workbench.store import StoreWriter
    from workbench.store import files as F

    path, data_file, spec_json, mode = sys.argv[1:5]
    import json
    data = np.load(data_file)
    n_chunks = int(data["n_chunks"])
    writer = StoreWriter(path, json.loads(spec_json))
    if mode == "self":  # SIGKILL in the middle of writing the third chunk's first shard
        original = F._write_all
        def write_then_die(fd, view):
            if writer.n_chunks == 2:
                original(fd, view[: len(view) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            original(fd, view)
        F._write_all = write_then_die
    for i in range(n_chunks):
        writer.append(
            {site: data[f"{i}/{site}"] for site in ("SITE_A", "SITE_B")},
            data[f"{i}/token_ids"], data[f"{i}/example_index"], data[f"{i}/position"],
        )
        print("committed", i, flush=True)
        time.sleep(0.2)
    time.sleep(60)  # never finalizes: the parent kills it
    """
)


@pytest.mark.parametrize("mode", ["self", "external"])
def test_sigkilled_process_leaves_resumable_store(tmp_path, make_chunks, write_store, mode):
    chunks = make_chunks(n_chunks=6, seed=7)
    for chunk in chunks:
        del chunk["row_labels"], chunk["example_labels"]
    spec = {"model": "toy", "dataset": "killed"}
    reference = write_store(tmp_path / "ref", chunks, spec)
    arrays = {"n_chunks": np.array(len(chunks))}
    for i, chunk in enumerate(chunks):
        for site, x in chunk["acts"].items():
            arrays[f"{i}/{site}"] = x
        for key in ("token_ids", "example_index", "position"):
            arrays[f"{i}/{key}"] = chunk[key]
    np.savez(tmp_path / "data.npz", **arrays)
    script = tmp_path / "child.py"
    script.write_text(CHILD.replace('"SITE_A", "SITE_B"', f'"{SITE_A}", "{SITE_B}"'))
    path = tmp_path / "s"
    child = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(path),
            str(tmp_path / "data.npz"),
            json.dumps(spec),
            mode,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if mode == "external":  # kill it from outside once two chunks are committed
        for line in child.stdout:
            if line.startswith("committed 1"):
                break
        child.send_signal(signal.SIGKILL)
    try:
        child.wait(timeout=120)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL, child.stderr.read()

    with pytest.raises(StoreIncompleteError, match="capture did not finish"):
        ActivationStore(path)
    resumed = StoreWriter(path, spec)
    assert resumed.resume_point >= 10 and resumed.resume_point % 5 == 0
    if mode == "self":
        assert resumed.resume_point == 10
    assert not list(path.rglob("*.tmp"))
    for chunk in chunks[resumed.resume_point // 5 :]:
        resumed.append(**chunk)
    _assert_same_store(resumed.finalize(), reference)


def test_exception_inside_with_leaves_store_incomplete(tmp_path, chunks, write_store, spec_for):
    path = tmp_path / "s"
    with pytest.raises(RuntimeError, match="model crashed"), StoreWriter(path, spec_for()) as w:
        w.append(**chunks[0])
        w.append(**chunks[1])
        raise RuntimeError("model crashed")
    assert json.loads((path / "manifest.json").read_text())["complete"] is False
    with pytest.raises(StoreIncompleteError):
        ActivationStore(path)
    with StoreWriter(path, spec_for()) as resumed:
        assert resumed.resume_point == 10
        resumed.append(**chunks[2])
        store = resumed.finalize()
    _assert_same_store(store, write_store(tmp_path / "ref", chunks))


def test_full_disk_fails_cleanly_and_resumes(tmp_path, monkeypatch, chunks, write_store, spec_for):
    path = tmp_path / "s"
    writer = StoreWriter(path, spec_for())
    writer.append(**chunks[0])
    writer.append(**chunks[1])
    files_before = _data_files(path)

    def no_space(fd, view):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_files, "_write_all", no_space)
    with pytest.raises(StoreWriteError) as info:
        writer.append(**chunks[2])
    message = str(info.value)
    assert "No space left on device" in message and str(path) in message
    assert "resume from example 10" in message and f"sites/{SITE_A}/chunk_000002.npy" in message
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["complete"] is False and len(manifest["chunks"]) == 2
    assert _data_files(path) == files_before  # no tmp file, no half chunk
    monkeypatch.undo()

    writer.abort()
    resumed = StoreWriter(path, spec_for())
    assert resumed.resume_point == 10
    resumed.append(**chunks[2])
    _assert_same_store(resumed.finalize(), write_store(tmp_path / "ref", chunks))


def test_full_disk_on_manifest_keeps_previous_commit(tmp_path, monkeypatch, chunks, spec_for):
    path = tmp_path / "s"
    writer = StoreWriter(path, spec_for())
    writer.append(**chunks[0])
    original = store_files.write_bytes_atomic

    def fail_manifest(target, pieces, **kwargs):
        if target.name == "manifest.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(target, pieces, **kwargs)

    monkeypatch.setattr(store_files, "write_bytes_atomic", fail_manifest)
    with pytest.raises(StoreWriteError, match="writing manifest.json failed"):
        writer.append(**chunks[1])
    monkeypatch.undo()
    # the same writer carries on once space is back
    assert writer.resume_point == 5 and not (path / "sites" / SITE_A / "chunk_000001.npy").exists()
    writer.append(**chunks[1])
    writer.append(**chunks[2])
    assert writer.finalize().n_rows == 60


def test_resumed_writer_refuses_committed_examples(tmp_path, chunks, spec_for):
    writer = StoreWriter(tmp_path / "s", spec_for())
    writer.append(**chunks[0])
    writer.abort()
    resumed = StoreWriter(tmp_path / "s", spec_for())
    with pytest.raises(InputError, match="examples before 5 are already committed"):
        resumed.append(**chunks[0])
    resumed.append(**chunks[1])
    assert resumed.resume_point == 10
