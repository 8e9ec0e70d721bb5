"""Write-then-read round trips: data, metadata, dtypes, layout, listing."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from workbench.errors import InputError, UnknownSiteError
from workbench.store import SCHEMA_VERSION, ActivationStore, StoreWriter, list_stores

SITE_A, SITE_B = "blocks.0.hook_resid_post", "blocks.1.mlp.hook_post"


def test_roundtrip_float32(tmp_path, chunks, concat, write_store, spec_for):
    store = write_store(tmp_path / "s", chunks)
    a, b = concat(chunks, "acts", SITE_A), concat(chunks, "acts", SITE_B)
    assert store.n_rows == 60 and store.n_examples == 15
    assert store.sites == [SITE_A, SITE_B]
    np.testing.assert_array_equal(store.read(SITE_A), a)
    np.testing.assert_array_equal(store.read(SITE_B), b)
    # a slice across both chunk boundaries (chunks hold rows 0-19, 20-39, 40-59)
    np.testing.assert_array_equal(store.read(SITE_B, slice(15, 45)), b[15:45])
    np.testing.assert_array_equal(store.read(SITE_B, slice(50, 3, -7)), b[50:3:-7])
    index = np.array([59, 0, 21, 21, -1, 40, 19])
    np.testing.assert_array_equal(store.read(SITE_A, index), a[index])
    mask = np.arange(60) % 7 == 3
    np.testing.assert_array_equal(store.read(SITE_A, mask), a[mask])
    assert store.read(SITE_A, np.array([], int)).shape == (0, 6)
    np.testing.assert_array_equal(store.token_ids(), concat(chunks, "token_ids"))
    np.testing.assert_array_equal(store.example_index(), concat(chunks, "example_index"))
    np.testing.assert_array_equal(store.positions(), concat(chunks, "position"))
    labels = store.row_labels()
    assert set(labels) == {"is_noun"} and labels["is_noun"].dtype == bool
    np.testing.assert_array_equal(labels["is_noun"], concat(chunks, "row_labels", "is_noun"))
    per_example = store.example_labels()["sentiment"]
    np.testing.assert_array_equal(per_example, concat(chunks, "example_labels", "sentiment"))
    # indexed by example: the label of each row's example
    assert per_example.shape == (15,)
    assert store.site_info(SITE_B) == {
        "dtype": "float32",
        "row_shape": [2, 3],
        "width": 6,
        "n_rows": 60,
    }


def test_manifest_fields(tmp_path, chunks, write_store, spec_for):
    spec = spec_for()
    store = write_store(tmp_path / "s", chunks, spec, provenance={"weights_sha256": "ab12"})
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert m["schema_version"] == SCHEMA_VERSION == 1
    assert m["complete"] is True
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    assert m["spec_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert m["spec"] == spec and store.spec == spec
    assert m["provenance"]["weights_sha256"] == "ab12"
    assert m["checksum_algorithm"] in ("xxh3_64", "crc32")
    assert [c["examples"] for c in m["chunks"]] == [[0, 5], [5, 10], [10, 15]]
    files = m["chunks"][1]["files"]
    assert f"sites/{SITE_A}/chunk_000001.npy" in files
    for rel, record in files.items():
        assert (tmp_path / "s" / rel).stat().st_size == record["bytes"]
    assert (tmp_path / "s" / m["stats"]["file"]).exists()


def test_finalize_adds_provenance(tmp_path, chunks, spec_for):
    writer = StoreWriter(tmp_path / "s", spec_for(), provenance={"step": 3})
    writer.append(**chunks[0])
    store = writer.finalize(extra_provenance={"elapsed_s": 1.5})
    assert store.provenance == {"step": 3, "elapsed_s": 1.5}


def test_shards_are_plain_memory_mappable_npy(tmp_path, chunks, write_store):
    store = write_store(tmp_path / "s", chunks)
    paths = store.shard_paths(SITE_B)
    assert len(paths) == 3
    shard = np.load(paths[1], mmap_mode="r")
    assert isinstance(shard, np.memmap) and shard.shape == (20, 6)
    np.testing.assert_array_equal(shard, chunks[1]["acts"][SITE_B].reshape(20, 6))


def _bf16_round(x: np.ndarray) -> np.ndarray:
    return torch.from_numpy(x).to(torch.bfloat16).float().numpy()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_roundtrip_half_dtypes(tmp_path, chunks, concat, write_store, spec_for, dtype):
    store = write_store(tmp_path / "s", chunks, spec_for(dtype=dtype))
    a = concat(chunks, "acts", SITE_A)
    expected = a.astype(np.float16).astype(np.float32) if dtype == "float16" else _bf16_round(a)
    assert not np.array_equal(expected, a)  # the cast is visible, so the test can fail
    got = store.read(SITE_A)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(store.read(SITE_A, np.array([45, 2])), expected[[45, 2]])
    assert store.site_info(SITE_A)["dtype"] == dtype
    native = store.read(SITE_A, dtype=None)
    assert native.dtype == (np.float16 if dtype == "float16" else np.float32)
    on_disk = np.load(store.shard_paths(SITE_A)[0], mmap_mode="r")
    assert on_disk.dtype == (np.float16 if dtype == "float16" else np.uint16)
    # stats describe the stored values
    np.testing.assert_allclose(store.stats(SITE_A)["mean"], expected.mean(0), rtol=1e-6)


def test_torch_inputs_including_bf16(tmp_path, chunks, concat, spec_for):
    writer = StoreWriter(tmp_path / "s", spec_for())
    for chunk in chunks:
        acts = {site: torch.from_numpy(x) for site, x in chunk["acts"].items()}
        acts[SITE_A] = acts[SITE_A].to(torch.bfloat16)  # stored as bf16: first chunk decides
        writer.append(**{**chunk, "acts": acts, "token_ids": torch.from_numpy(chunk["token_ids"])})
    store = writer.finalize()
    assert store.site_info(SITE_A)["dtype"] == "bfloat16"
    assert store.site_info(SITE_B)["dtype"] == "float32"
    np.testing.assert_array_equal(store.read(SITE_A), _bf16_round(concat(chunks, "acts", SITE_A)))
    np.testing.assert_array_equal(store.read(SITE_B), concat(chunks, "acts", SITE_B))


def test_non_sequence_rows_default_token_and_position(tmp_path, spec_for):
    writer = StoreWriter(tmp_path / "s", {"model": "mlp", "dataset": "blobs"})
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    writer.append({"fc1": x}, token_ids=None, example_index=np.arange(4), position=None)
    store = writer.finalize()
    np.testing.assert_array_equal(store.token_ids(), [-1] * 4)
    np.testing.assert_array_equal(store.positions(), [0] * 4)
    np.testing.assert_array_equal(store.example_index(), np.arange(4))
    assert store.n_examples == 4


def test_example_stop_covers_examples_without_rows(tmp_path):
    writer = StoreWriter(tmp_path / "s", {"model": "m"})
    x = np.ones((2, 3), np.float32)
    writer.append({"s": x}, None, np.array([0, 2]), None, example_stop=4)
    assert writer.resume_point == 4
    writer.append({"s": x[:0]}, None, np.array([], int), None, example_stop=6)  # no rows at all
    writer.append({"s": x}, None, np.array([6, 6]), None)
    store = writer.finalize()
    assert store.n_examples == 7 and store.n_rows == 4
    np.testing.assert_array_equal(store.read("s", slice(1, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(store.example_index(), [0, 2, 6, 6])


def test_unknown_site_lists_valid_sites(tmp_path, chunks, write_store):
    store = write_store(tmp_path / "s", chunks)
    with pytest.raises(UnknownSiteError) as info:
        store.read("blocks.0.hook_resid_pre")
    message = str(info.value)
    assert "blocks.0.hook_resid_pre" in message and SITE_A in message


def test_bad_row_selections(tmp_path, chunks, write_store):
    store = write_store(tmp_path / "s", chunks)
    with pytest.raises(InputError, match="out of range"):
        store.read(SITE_A, np.array([60]))
    with pytest.raises(InputError, match="boolean row mask"):
        store.read(SITE_A, np.ones(5, bool))
    with pytest.raises(InputError, match="1-D int array"):
        store.read(SITE_A, np.array([0.5]))


def test_list_stores(tmp_path, chunks, write_store, spec_for):
    write_store(tmp_path / "a" / "model1" / "run", chunks[:1])
    incomplete = StoreWriter(tmp_path / "b", spec_for(dataset="other"))
    incomplete.append(**chunks[0])
    incomplete.abort()
    write_store(tmp_path / "x1" / "x2" / "x3" / "x4" / "x5", chunks[:1])  # depth 5: not listed
    (tmp_path / "not_a_store").mkdir()
    found = list_stores(tmp_path)
    assert [f["path"] for f in found] == [
        str(tmp_path / "a" / "model1" / "run"),
        str(tmp_path / "b"),
    ]
    first, second = found
    assert first["complete"] is True and second["complete"] is False
    assert first["n_rows"] == 20 and first["sites"] == [SITE_A, SITE_B]
    assert first["summary"] == {"model": "toy", "checkpoint": "final", "dataset": "synthetic"}
    assert second["summary"]["dataset"] == "other"
    assert isinstance(ActivationStore(first["path"]), ActivationStore)


def test_store_opened_by_a_relative_path_records_an_absolute_one(
    tmp_path, chunks, write_store, monkeypatch
):
    """Results and SAE reports record `store.path`; a relative one (`workbench demo --out
    runs/demo`) once pointed the app's SAE page outside its runs directory."""
    write_store(tmp_path / "runs" / "s", chunks)
    monkeypatch.chdir(tmp_path)
    store = ActivationStore("runs/s")
    assert store.path.is_absolute() and store.path == tmp_path / "runs" / "s"
