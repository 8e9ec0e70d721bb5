"""Opening rules: spec identity, overwrite, completed stores, locks, names."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import InputError, StoreError, StoreSpecMismatchError
from workbench.store import ActivationStore, StoreWriter


def _snapshot(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_spec_mismatch_is_refused_and_nothing_deleted(tmp_path, chunks, write_store, spec_for):
    path = tmp_path / "s"
    write_store(path, chunks[:2], finalize=False).abort()
    before = _snapshot(path)
    with pytest.raises(StoreSpecMismatchError) as info:
        StoreWriter(path, spec_for(checkpoint="step-1000"))
    message = str(info.value)
    assert str(path) in message
    assert 'checkpoint: stored="final" given="step-1000"' in message
    assert "model" not in message.split("differing keys:")[1]  # only differing keys listed
    assert _snapshot(path) == before
    # a complete store is protected the same way
    write_store(tmp_path / "done", chunks)
    with pytest.raises(StoreSpecMismatchError):
        StoreWriter(tmp_path / "done", spec_for(dataset="other"))
    assert ActivationStore(tmp_path / "done").n_rows == 60


def test_overwrite_replaces_a_store(tmp_path, chunks, make_chunks, write_store, spec_for):
    path = tmp_path / "s"
    write_store(path, chunks)
    (path / "notes.txt").write_text("user file")  # not part of the store: left alone
    new_chunks = make_chunks(n_chunks=1, seed=9)
    store = write_store(path, new_chunks, spec_for(checkpoint="step-5"), overwrite=True)
    assert store.spec["checkpoint"] == "step-5" and store.n_rows == 20
    site = "blocks.0.hook_resid_post"
    np.testing.assert_array_equal(store.read(site), new_chunks[0]["acts"][site])
    assert not (path / "sites" / site / "chunk_000001.npy").exists()
    assert (path / "notes.txt").read_text() == "user file"


def test_overwrite_refuses_a_directory_that_is_not_a_store(tmp_path, chunks, spec_for):
    path = tmp_path / "mine"
    path.mkdir()
    (path / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(StoreError, match="is not an activation store"):
            StoreWriter(path, spec_for(), overwrite=overwrite)
    assert (path / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in path.iterdir()) == ["thesis.tex"]
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        StoreWriter(file, spec_for())


def test_complete_store_is_not_rewritten(tmp_path, chunks, write_store, spec_for):
    path = tmp_path / "s"
    assert not StoreWriter.existing_complete(path, spec_for())
    writer = write_store(path, chunks[:1], finalize=False)
    assert not StoreWriter.existing_complete(path, spec_for())  # incomplete
    writer.append(**chunks[1])
    writer.finalize()
    assert StoreWriter.existing_complete(path, spec_for())
    assert not StoreWriter.existing_complete(path, spec_for(dataset="other"))
    with pytest.raises(StoreError, match="already complete.*overwrite=True"):
        StoreWriter(path, spec_for())
    with pytest.raises(StoreError, match="nothing was appended"):
        StoreWriter(path, spec_for(), overwrite=True).finalize()


def test_one_writer_at_a_time(tmp_path, chunks, spec_for):
    first = StoreWriter(tmp_path / "s", spec_for())
    first.append(**chunks[0])
    with pytest.raises(StoreError, match="another StoreWriter"):
        StoreWriter(tmp_path / "s", spec_for())
    first.abort()
    second = StoreWriter(tmp_path / "s", spec_for())
    assert second.resume_point == 5
    with pytest.raises(StoreError, match="closed"):
        first.append(**chunks[1])


@pytest.mark.parametrize("bad", ["a/b", "..", ".hidden", "x/../y", ""])
def test_site_names_must_be_directory_names(tmp_path, bad):
    writer = StoreWriter(tmp_path / "s", {"model": "m"})
    with pytest.raises(InputError, match="site name"):
        writer.append({bad: np.zeros((2, 3), np.float32)}, None, np.arange(2), None)
    assert not (tmp_path / "s" / "sites").exists()


def test_spec_must_be_json(tmp_path):
    with pytest.raises(InputError, match="JSON"):
        StoreWriter(tmp_path / "s", {"model": object()})
    with pytest.raises(InputError, match="JSON"):
        StoreWriter(tmp_path / "s", {"lr": float("nan")})


def test_spec_dtype_must_be_storable(tmp_path):
    writer = StoreWriter(tmp_path / "s", {"model": "m", "dtype": "int8"})
    with pytest.raises(InputError, match="float32.*float16.*bfloat16"):
        writer.append({"s": np.zeros((2, 3), np.float32)}, None, np.arange(2), None)
