"""Damaged stores are caught: truncation on open/read, bit flips by verify()."""

from __future__ import annotations

import json
import os

import pytest

from workbench.errors import StoreCorruptError, StoreError
from workbench.store import ActivationStore, StoreWriter

SITE = "blocks.1.mlp.hook_post"


def test_truncated_shard_is_caught_on_open(tmp_path, chunks, write_store):
    store = write_store(tmp_path / "s", chunks)
    shard = store.shard_paths(SITE)[1]
    size = shard.stat().st_size
    os.truncate(shard, size - 8)
    with pytest.raises(StoreCorruptError) as info:
        ActivationStore(tmp_path / "s")
    assert str(shard) in str(info.value)
    assert f"{size - 8} bytes" in str(info.value) and f"{size} bytes" in str(info.value)


def test_truncated_shard_is_caught_on_read(tmp_path, chunks, write_store):
    store = write_store(tmp_path / "s", chunks)
    shard = store.shard_paths(SITE)[2]
    os.truncate(shard, 100)  # after the store was opened
    store.read(SITE, slice(0, 40))  # untouched chunks still read
    with pytest.raises(StoreCorruptError, match=str(shard)):
        store.read(SITE, slice(35, 45))


def test_flipped_byte_is_caught_by_verify(tmp_path, chunks, write_store):
    store = write_store(tmp_path / "s", chunks)
    store.verify()  # a sound store verifies
    shard = store.shard_paths(SITE)[0]
    data = bytearray(shard.read_bytes())
    data[200] ^= 0x01
    shard.write_bytes(bytes(data))
    reopened = ActivationStore(tmp_path / "s")  # same size: the cheap check passes
    with pytest.raises(StoreCorruptError) as info:
        reopened.verify()
    message = str(info.value)
    assert str(shard) in message and "expected" in message and "got" in message
    assert message.count("\n") == 1  # exactly one bad file listed
    with pytest.raises(StoreCorruptError, match=str(shard)):
        ActivationStore(tmp_path / "s", verify=True)


def test_missing_file_is_caught(tmp_path, chunks, write_store):
    write_store(tmp_path / "s", chunks)
    (tmp_path / "s" / "rows" / "token_ids" / "chunk_000001.npy").unlink()
    with pytest.raises(StoreCorruptError, match="token_ids/chunk_000001.npy: missing"):
        ActivationStore(tmp_path / "s")


def test_not_a_store_and_unknown_schema(tmp_path, chunks, write_store):
    with pytest.raises(StoreError, match="not an activation store"):
        ActivationStore(tmp_path)
    write_store(tmp_path / "s", chunks)
    manifest_path = tmp_path / "s" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["schema_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreCorruptError, match="schema_version 99"):
        ActivationStore(tmp_path / "s")
    manifest_path.write_text("{not json")
    with pytest.raises(StoreCorruptError, match="not valid JSON"):
        ActivationStore(tmp_path / "s")


def test_resume_refuses_committed_data_lost_by_a_crash(tmp_path, chunks, write_store, spec_for):
    # what a power loss can leave: the manifest committed a chunk whose data never hit the disk
    writer = write_store(tmp_path / "s", chunks[:2], finalize=False)
    writer.abort()
    os.truncate(tmp_path / "s" / "sites" / SITE / "chunk_000001.npy", 0)
    with pytest.raises(StoreCorruptError, match="overwrite=True"):
        StoreWriter(tmp_path / "s", spec_for())


def test_resume_keeps_the_store_checksum_algorithm(tmp_path, monkeypatch, chunks, spec_for):
    from workbench.store import files as store_files

    monkeypatch.setattr(store_files, "CHECKSUM_ALGORITHM", "crc32")  # as without xxhash
    writer = StoreWriter(tmp_path / "s", spec_for(), durable=True)
    writer.append(**chunks[0])
    writer.abort()
    monkeypatch.undo()
    resumed = StoreWriter(tmp_path / "s", spec_for())
    resumed.append(**chunks[1])
    store = resumed.finalize()
    assert store.manifest["checksum_algorithm"] == "crc32"
    store.verify()  # chunk 1, written after the resume, is crc32 too
    shard = store.shard_paths(SITE)[1]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x80
    shard.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="crc32"):
        store.verify()
