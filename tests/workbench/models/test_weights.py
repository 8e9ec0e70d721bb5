"""The weight-fingerprint cache of `hash_files` (`workbench.models.fingerprints`, re-exported by
`workbench.models.weights`): same value as reading the bytes, no re-read on a hit, invalidated
by a changed size or mtime, safe across processes, optional where the cache folder cannot be
written."""

from __future__ import annotations

import builtins
import hashlib
import multiprocessing
import os
from pathlib import Path

import pytest

from workbench.models import fingerprints
from workbench.models import weights as weights_module
from workbench.models.fingerprints import cache_dir, hash_files


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(fingerprints.CACHE_ENV, str(folder))
    return folder


def make_files(folder: Path, sizes=(3000, 5000)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, size in enumerate(sizes):
        path = folder / f"model-{i:05d}.safetensors"
        path.write_bytes(bytes((i * 7 + j) % 251 for j in range(size)))
        paths.append(path)
    return paths


def reference(paths: list[Path]) -> str:
    """The definition recorded by earlier batch runs, written out independently."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()


class OpenCounter:
    """Counts `open` calls on the files of interest (sqlite does not use Python's open)."""

    def __init__(self, paths: list[Path]) -> None:
        self.watched = {str(p) for p in paths} | {str(p.resolve()) for p in paths}
        self.count = 0
        self.real = builtins.open

    def __call__(self, file, *args, **kwargs):
        if str(file) in self.watched:
            self.count += 1
        return self.real(file, *args, **kwargs)


def test_cached_value_equals_uncached_and_reference(tmp_path, own_cache):
    assert weights_module.hash_files is hash_files  # what batch plans and handles call
    paths = make_files(tmp_path / "ckpt")
    first = hash_files(list(reversed(paths)))  # order given does not matter
    assert first == reference(paths)
    assert hash_files(paths) == first == hash_files(paths, cache=False)
    assert (own_cache / fingerprints.FINGERPRINT_DB).is_file()


def test_second_call_reads_no_weight_bytes(tmp_path, monkeypatch):
    paths = make_files(tmp_path / "ckpt")
    counter = OpenCounter(paths)
    monkeypatch.setattr(builtins, "open", counter)
    value = hash_files(paths)
    assert counter.count == len(paths)
    assert hash_files(paths) == value
    assert counter.count == len(paths)  # the hit read nothing


def test_mtime_or_size_change_invalidates(tmp_path):
    paths = make_files(tmp_path / "ckpt")
    before = hash_files(paths)
    # same size, new bytes, then the mtime put back: only a changed mtime must be enough
    stat = paths[0].stat()
    with open(paths[0], "r+b") as fh:
        fh.write(b"\xff")
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert hash_files(paths) == before  # (path, size, mtime) unchanged: the cache trusts it
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    touched = hash_files(paths)
    assert touched != before and touched == reference(paths)
    with open(paths[1], "ab") as fh:
        fh.write(b"more")
    grown = hash_files(paths)
    assert grown not in (before, touched) and grown == reference(paths)


def test_symlinks_hash_the_link_name_and_key_on_the_target(tmp_path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "abc123").write_bytes(b"weights" * 100)
    snapshot = tmp_path / "snapshots" / "c0ffee"
    snapshot.mkdir(parents=True)
    link = snapshot / "model.safetensors"
    link.symlink_to(blobs / "abc123")
    value = hash_files([link])
    assert value == reference([link])  # the name hashed is the link's, the bytes the blob's
    assert value != hash_files([blobs / "abc123"])
    (blobs / "abc123").write_bytes(b"other" * 100)  # the blob replaced under the link
    assert hash_files([link]) == reference([link]) != value


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        hash_files([tmp_path / "absent.safetensors"])


def test_unwritable_cache_folder_hashes_without_cache(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(fingerprints.CACHE_ENV, str(blocker / "cache"))
    paths = make_files(tmp_path / "ckpt")
    with caplog.at_level("DEBUG", logger="workbench.models.fingerprints"):
        assert hash_files(paths) == reference(paths)
    assert "hashing without it" in caplog.text
    assert not (blocker.parent / "cache").exists()


def test_corrupt_database_hashes_without_cache(tmp_path, own_cache):
    own_cache.mkdir()
    (own_cache / fingerprints.FINGERPRINT_DB).write_bytes(b"this is not a database" * 100)
    paths = make_files(tmp_path / "ckpt")
    assert hash_files(paths) == reference(paths)


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(fingerprints.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "workbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "workbench"


def hash_many(args: tuple[str, list[str], int]) -> list[str]:
    cache, paths, rounds = args
    os.environ[fingerprints.CACHE_ENV] = cache
    return [hash_files([Path(p) for p in paths]) for _ in range(rounds)]


def test_two_processes_share_the_cache(tmp_path, own_cache):
    sets = [make_files(tmp_path / f"ckpt{i}", sizes=(2000 + i,)) for i in range(6)]
    jobs = [(str(own_cache), [str(p) for p in paths], 3) for paths in sets + sets[::-1]]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(hash_many, jobs)
    expected = [reference(paths) for paths in sets + sets[::-1]]
    assert [r[0] for r in results] == expected
    assert all(len(set(r)) == 1 for r in results)
    counter = OpenCounter([p for paths in sets for p in paths])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtins, "open", counter)
        assert [hash_files(paths) for paths in sets] == expected[: len(sets)]
    assert counter.count == 0  # every entry the workers wrote is readable here
