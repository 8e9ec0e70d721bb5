"""Streaming statistics against closed forms on the concatenated data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.store import RunningStats, StoreWriter

SITE = "blocks.0.hook_resid_post"


def _topk_reference(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, dim) of the k largest |x|, ties to the lower flat index (a stable sort)."""
    flat = np.argsort(-np.abs(x).ravel(), kind="stable")[:k]
    return np.divmod(flat, x.shape[1])


def test_store_stats_match_numpy(tmp_path, make_chunks, concat, write_store):
    chunks = make_chunks(n_chunks=4, seed=3)
    chunks[2]["acts"][SITE][7, 4] = -1e4  # planted: global row 47, dim 4
    store = write_store(tmp_path / "s", chunks, topk=16)
    x = concat(chunks, "acts", SITE).astype(np.float64)
    s = store.stats(SITE)
    assert s["count"] == 80
    # float32 data: the mean is exact to ~1e-7 of each dim's scale (max |a|)
    assert (np.abs(s["mean"] - x.mean(0)) <= 1e-6 * np.abs(x).max(0)).all()
    np.testing.assert_allclose(s["var"], x.var(0, ddof=0), rtol=1e-6)
    np.testing.assert_allclose(s["std"], x.std(0, ddof=0), rtol=1e-6)
    np.testing.assert_array_equal(s["max_abs"], np.abs(x).max(0))
    np.testing.assert_array_equal(s["min"], x.min(0))
    np.testing.assert_array_equal(s["max"], x.max(0))
    np.testing.assert_allclose(s["mean_norm"], np.linalg.norm(x, axis=1).mean(), rtol=1e-6)
    rows, dims = _topk_reference(x, 16)
    assert [(t["row"], t["dim"]) for t in s["topk"]] == list(zip(rows, dims, strict=True))
    np.testing.assert_array_equal([t["value"] for t in s["topk"]], x[rows, dims])
    top = s["topk"][0]
    assert (top["row"], top["dim"], top["value"], top["abs"]) == (47, 4, -1e4, 1e4)
    assert top["token_id"] == chunks[2]["token_ids"][7]
    assert top["example_index"] == chunks[2]["example_index"][7] == 11
    assert top["position"] == chunks[2]["position"][7] == 3


def test_variance_survives_a_large_mean():
    # massive-activation-like dims: mean 1e3 or 3e4, std 1: a naive E[x^2]-E[x]^2 in float32
    # would lose every digit of the variance.
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((20_000, 8)) + np.array([1e3, -3e4, 0, 5, 1e3, 1, 2, 3])).astype(
        np.float32
    )
    stats = RunningStats(topk=4)
    for start in range(0, len(x), 3000):
        stats.update(x[start : start + 3000], row_offset=start)
    s = stats.summary()
    np.testing.assert_allclose(s["var"], x.astype(np.float64).var(0), rtol=1e-4)
    x64 = x.astype(np.float64)
    assert (np.abs(s["mean"] - x64.mean(0)) <= 1e-7 * np.abs(x64).max(0)).all()


def test_large_chunk_accuracy_and_topk():
    # big enough for many cache blocks and 64-row groups inside one chunk
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40_000, 96)).astype(np.float32)
    x[31_337, 50] = 99.0
    s = RunningStats(topk=40).update(x, row_offset=1000).summary()
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(s["mean"], x64.mean(0), atol=1e-7)
    np.testing.assert_allclose(s["var"], x64.var(0), rtol=1e-6)
    rows, dims = _topk_reference(x, 40)
    assert [(t["row"], t["dim"]) for t in s["topk"]] == list(zip(rows + 1000, dims, strict=True))
    assert s["topk"][0]["row"] == 32_337 and s["topk"][0]["value"] == 99.0


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((500, 40), np.float32),  # every value ties
        np.random.default_rng(2).integers(-2, 3, (700, 50)).astype(np.float32),  # many ties
        np.random.default_rng(3).standard_normal((3000, 3)).astype(np.float32),  # width < k
    ],
    ids=["zeros", "small-integers", "narrow"],
)
def test_topk_ties_and_narrow_sites(x):
    stats = RunningStats(topk=10)
    stats.update(x[:200], 0).update(x[200:], 200)
    got = [(t["row"], t["dim"]) for t in stats.summary()["topk"]]
    rows, dims = _topk_reference(x, 10)
    assert got == list(zip(rows, dims, strict=True))


def test_merge_and_state_dict_are_exact():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((300, 7)), rng.standard_normal((500, 7)) * 3 + 1
    one = RunningStats(5).update(a, 0).update(b, 300)
    left, right = RunningStats(5).update(a, 0), RunningStats(5).update(b, 300)
    merged = left.merge(right)
    np.testing.assert_allclose(merged.mean, one.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.m2, one.m2, rtol=1e-12)
    restored = RunningStats.from_state_dict(one.state_dict())
    for key, value in one.summary().items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(restored.summary()[key], value)
        else:
            assert restored.summary()[key] == value


def test_update_accepts_torch_and_trailing_dims():
    x = torch.randn(64, 2, 5, generator=torch.Generator().manual_seed(0))
    s = RunningStats(3).update(x, 0, token_ids=np.arange(64) + 100).summary()
    flat = x.reshape(64, 10).double().numpy()
    np.testing.assert_allclose(s["mean"], flat.mean(0), atol=1e-6)
    assert s["topk"][0]["token_id"] == 100 + s["topk"][0]["row"]
    bf = RunningStats(3).update(x.to(torch.bfloat16), 0).summary()
    np.testing.assert_array_equal(bf["max"], x.to(torch.bfloat16).float().reshape(64, 10).amax(0))


def test_empty_stats_summary_is_nan():
    s = RunningStats(4, width=3).summary()
    assert s["count"] == 0 and np.isnan(s["mean"]).all() and s["topk"] == []


def test_resumed_stats_equal_uninterrupted(tmp_path, make_chunks, spec_for):
    chunks = make_chunks(n_chunks=4, seed=5)
    full = StoreWriter(tmp_path / "full", spec_for())
    for c in chunks:
        full.append(**c)
    reference = full.finalize().stats(SITE)
    part = StoreWriter(tmp_path / "part", spec_for())
    for c in chunks[:2]:
        part.append(**c)
    part.abort()
    resumed = StoreWriter(tmp_path / "part", spec_for())
    for c in chunks[2:]:
        resumed.append(**c)
    got = resumed.finalize().stats(SITE)
    for key, value in reference.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[key], value)
        else:
            assert got[key] == value
