"""The shared nearest-neighbour search (analyses/geometry/knn_cache.py): TwoNN and MLE on the
same rows cost one search and give the unshared results (to 1e-12); other subsamples, seeds and
sites never share; memory stays within the budget."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analyses.geometry import knn_cache
from analyses.geometry.curves import store_curves
from analyses.geometry.intrinsic_dim import MLE, MLEParams, TwoNN, TwoNNParams, run_mle, run_twonn
from analyses.geometry.knn_cache import NEIGHBOURS, NeighbourCache, rows_key
from analyses.geometry.neighbours import knn_distances
from workbench.analysis.sources import Source
from workbench.errors import InputError
from workbench.store import StoreWriter


def manifold(n: int, seed: int = 0, dim: int = 24) -> np.ndarray:
    """A curved 4-dimensional manifold in `dim` dimensions (bench_intrinsic_dim's generator)."""
    rng = np.random.default_rng(seed)
    return np.sin(rng.normal(size=(n, 4)) @ rng.normal(size=(4, dim)) / 2.0)


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts from an empty process-wide cache and leaves it empty and enabled."""
    NEIGHBOURS.clear()
    NEIGHBOURS.enabled = True
    yield
    NEIGHBOURS.clear()
    NEIGHBOURS.enabled = True


def unshared(fit):
    """Run `fit()` with sharing off (every estimator searches on its own); the cache's
    counters are left as they were."""
    counters = NEIGHBOURS.searches, NEIGHBOURS.hits
    NEIGHBOURS.enabled = False
    try:
        return fit()
    finally:
        NEIGHBOURS.enabled = True
        NEIGHBOURS.searches, NEIGHBOURS.hits = counters


def test_twonn_and_mle_share_one_search_with_unshared_results():
    x = manifold(1500)
    alone_twonn = unshared(lambda: TwoNN().fit(x))
    alone_mle = unshared(lambda: MLE(n_neighbors=15).fit(x))
    # MLE first: its k = 15 search serves TwoNN's r1, r2
    mle = MLE(n_neighbors=15).fit(x)
    twonn = TwoNN().fit(x)
    assert NEIGHBOURS.searches == 1 and NEIGHBOURS.hits == 1
    np.testing.assert_allclose(twonn.mu_, alone_twonn.mu_, rtol=1e-12, atol=0)
    np.testing.assert_allclose(mle.local_, alone_mle.local_, rtol=1e-12, atol=0)
    assert twonn.dimension_ == pytest.approx(alone_twonn.dimension_, rel=1e-12)
    assert mle.dimension_ == pytest.approx(alone_mle.dimension_, rel=1e-12)


def test_planned_width_serves_twonn_first_and_fewer_columns_are_a_prefix():
    x = manifold(1200, seed=1)
    with NEIGHBOURS.plan(20):
        twonn = TwoNN().fit(x)
        mle = MLE(n_neighbors=20).fit(x)
    assert NEIGHBOURS.searches == 1 and NEIGHBOURS.hits == 1
    reference = knn_distances(x, 20)
    np.testing.assert_allclose(
        mle.local_, unshared(lambda: MLE(20).fit(x)).local_, rtol=1e-12, atol=0
    )
    np.testing.assert_allclose(twonn.mu_, reference[:, 1] / reference[:, 0], rtol=1e-12)
    np.testing.assert_allclose(
        knn_cache.shared_distances(x, 7), knn_distances(x, 7), rtol=1e-12, atol=0
    )


def test_cache_learns_the_wider_search_after_one_miss():
    first, second = manifold(800, seed=2), manifold(800, seed=3)
    TwoNN().fit(first)
    MLE(n_neighbors=12).fit(first)  # same rows, more neighbours: a second search
    assert NEIGHBOURS.searches == 2
    TwoNN().fit(second)  # now fetches 12 at once
    MLE(n_neighbors=12).fit(second)
    assert NEIGHBOURS.searches == 3 and NEIGHBOURS.hits == 1
    # a lone TwoNN in a fresh cache searches only 2 neighbours
    NEIGHBOURS.clear()
    TwoNN().fit(first)
    assert [d.shape[1] for d in NEIGHBOURS._entries.values()] == [2]


def test_other_subsamples_seeds_and_sites_never_share(tmp_path):
    a, b = manifold(3000, seed=5), manifold(3000, seed=6)
    writer = StoreWriter(tmp_path / "s", {"test": "knn"})
    for rows in np.array_split(np.arange(3000), 3):
        writer.append({"a": a[rows], "b": b[rows]}, None, rows, None)
    store = writer.finalize()
    seen = []
    for site, seed, max_samples in (("a", 0, 1000), ("a", 1, 1000), ("a", 0, 900), ("b", 0, 1000)):
        source = Source.from_store(store, site)
        settings = {"max_samples": max_samples, "seed": seed, "n_bootstrap": 0}

        def both(source=source, settings=settings):
            return [
                run_mle(source, MLEParams(**settings)),
                run_twonn(source, TwoNNParams(**settings)),
            ]

        shared, alone = both(), unshared(both)
        for s, u in zip(shared, alone, strict=True):
            assert s.headline["dimension"] == pytest.approx(u.headline["dimension"], rel=1e-12)
        seen.append(shared[0].headline["dimension"])
    assert NEIGHBOURS.searches == 4 and NEIGHBOURS.hits == 4  # one search per subsample
    assert len(set(seen)) == 4  # four different subsamples, four different estimates


def test_key_is_the_rows_content():
    x = manifold(50)
    assert rows_key(x) == rows_key(x.copy()) == rows_key(np.asfortranarray(x))
    y = x.copy()
    y[17, 3] = np.nextafter(y[17, 3], 2.0)
    assert rows_key(y) != rows_key(x)
    assert rows_key(x[:49]) != rows_key(x)
    assert rows_key(x.reshape(100, 12)) != rows_key(x)


def test_memory_is_bounded_and_results_are_copies():
    cache = NeighbourCache(max_bytes=3 * 300 * 5 * 8)  # three (300, 5) entries
    clouds = [manifold(300, seed=s) for s in range(5)]
    for x in clouds:
        cache.distances(x, 5)
        assert cache.nbytes <= cache.max_bytes
    assert len(cache) == 3 and cache.searches == 5
    cache.distances(clouds[-1], 5)  # most recent: a hit
    cache.distances(clouds[0], 5)  # evicted: searched again
    assert cache.hits == 1 and cache.searches == 6
    got = cache.distances(clouds[0], 5)
    got[:] = -1.0  # the caller's copy, not the cached matrix
    np.testing.assert_array_equal(cache.distances(clouds[0], 5), knn_distances(clouds[0], 5))
    tiny = NeighbourCache(max_bytes=100)  # smaller than any entry: keeps nothing
    tiny.distances(clouds[0], 5)
    assert len(tiny) == 0 and tiny.nbytes == 0
    with pytest.raises(InputError, match="max_bytes=-1"):
        NeighbourCache(max_bytes=-1)
    with pytest.raises(InputError, match="k=300"):
        cache.distances(clouds[0], 300)


def test_store_curves_searches_once_per_site(tmp_path):
    acts = {f"blocks.{i}.hook_resid_post": manifold(900, seed=10 + i) for i in range(2)}
    writer = StoreWriter(tmp_path / "c", {"test": "knn", "checkpoint_step": 0})
    for rows in np.array_split(np.arange(900), 2):
        writer.append({k: v[rows] for k, v in acts.items()}, None, rows, None)
    store = writer.finalize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = store_curves([store], analyses=("twonn", "mle"))
        assert NEIGHBOURS.searches == 2 and NEIGHBOURS.hits == 2
        alone = unshared(lambda: store_curves([store], analyses=("twonn", "mle")))
    np.testing.assert_allclose(shared["value"], alone["value"], rtol=1e-12, atol=0)
    # different subsamples for the two estimators: no planned width, no sharing
    NEIGHBOURS.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store_curves([store], analyses=("twonn", "mle"), params={"twonn": {"max_samples": 500}})
    assert NEIGHBOURS.hits == 0
