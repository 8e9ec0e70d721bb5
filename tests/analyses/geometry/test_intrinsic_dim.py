"""Intrinsic dimension: exact neighbours, known manifolds, invariances, scikit-dimension's own
regression values, bad input, store input and the CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import gammainc

from analyses.geometry.intrinsic_dim import (
    ANALYSES,
    MLE,
    MLEParams,
    PCADim,
    PCAParams,
    TwoNN,
    TwoNNParams,
    run_mle,
    run_pca,
    run_twonn,
)
from analyses.geometry.neighbours import knn_distances
from workbench.analysis.registry import analyses
from workbench.analysis.sources import Source
from workbench.cli.main import main
from workbench.errors import InputError
from workbench.store import StoreWriter


def rotated(x: np.ndarray, ambient: int = 64, seed: int = 0) -> np.ndarray:
    """x (n, d) embedded in `ambient` dims by a random rotation, plus a random translation."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(ambient, ambient)))
    padded = np.zeros((len(x), ambient))
    padded[:, : x.shape[1]] = x
    return padded @ q.T + rng.normal(size=ambient) * 5


def sphere(n: int, d: int, seed: int) -> np.ndarray:
    """Uniform on the unit d-sphere S^d in R^(d+1)."""
    x = np.random.default_rng(seed).normal(size=(n, d + 1))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def hyper_ball(n: int, d: int, seed: int) -> np.ndarray:
    """skdim.datasets.hyperBall(n, d, radius=1, random_state=seed), rewritten from its
    definition (scikit-dimension 0.5.0): same RandomState draws, same radial map."""
    x = np.random.RandomState(seed).normal(size=(n, d))
    ssq = (x**2).sum(axis=1)
    return x * (gammainc(d / 2, ssq / 2) ** (1 / d) / np.sqrt(ssq))[:, None]


@pytest.fixture(scope="module")
def skdim_data() -> np.ndarray:
    """skdim's test fixture (skdim/tests/test_results.py): 30 points of a 5-ball in 10 dims."""
    data = np.zeros((30, 10))
    data[:, :5] = hyper_ball(30, 5, 0)
    return data


def test_registered():
    found = analyses()
    assert [found[a.name] for a in ANALYSES] == ANALYSES
    assert {"twonn", "mle", "pca-dim"} <= set(found)


@pytest.mark.parametrize("shape,offset", [((400, 64), 0.0), ((300, 3), 100.0), ((1500, 200), 7.0)])
def test_knn_matches_brute_force(shape, offset):
    x = np.random.default_rng(1).normal(size=shape) + offset
    ref = np.sort(cdist(x, x), axis=1)[:, 1:21]
    got = knn_distances(x, 20, max_block_bytes=64 * shape[0])  # many small blocks
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_knn_ties_fall_back_to_exact_search():
    # a lattice: many exactly tied distances, so the float32 certificate cannot separate the
    # k-th neighbour from the next candidates and rows go to the float64 search
    grid = np.stack(np.meshgrid(*[np.arange(6.0)] * 3), axis=-1).reshape(-1, 3) * 1000.0
    ref = np.sort(cdist(grid, grid), axis=1)[:, 1:7]
    np.testing.assert_allclose(knn_distances(grid, 6, margin=0), ref, rtol=1e-12)
    with pytest.raises(InputError, match="k=216"):
        knn_distances(grid, 216)


# Reference values: scikit-dimension's own regression tests (skdim/tests/test_results.py),
# quoted in METHODS.md 1.2, and TwoNN values of PyPI scikit-dimension 0.5.0 (after the
# off-by-one fix, commit 702f4df). PCA participation ratio / "ratio" 0.9: skdim 0.5.0
# lPCA(ver="participation_ratio" / ver="ratio", alphaRatio=0.9) on the same data, run here.
def test_skdim_reference_values(skdim_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert MLE().fit(skdim_data).dimension_ == pytest.approx(3.341161830518472, rel=1e-12)
        assert MLE(n_neighbors=5).fit(skdim_data).dimension_ == pytest.approx(
            4.350132038093711, rel=1e-12
        )
        assert MLE(unbiased=True).fit(skdim_data).dimension_ == pytest.approx(
            3.1653112078596046, rel=1e-12
        )
        assert MLE(comb="mean").fit(skdim_data).dimension_ == pytest.approx(
            3.4389424541367437, rel=1e-12
        )
        high = np.zeros((30, 30))
        high[:, :10] = skdim_data
        assert round(TwoNN().fit(high).dimension_, 5) == 4.52231
        assert round(TwoNN(discard_fraction=0.05).fit(skdim_data).dimension_, 5) == 4.63403
        pca = PCADim().fit(skdim_data)
    assert pca.n_components_fo_ == 5
    assert pca.participation_ratio_ == pytest.approx(4.387876415881794, rel=1e-10)
    assert pca.n_components_90_ == 4


def test_twonn_convention_by_hand():
    # mu known: the estimate is the through-origin slope with F_i = i/N over the kept 90%
    mu = np.exp(np.random.default_rng(3).exponential(1 / 4.0, size=1000))
    from analyses.geometry.intrinsic_dim import twonn_from_mu

    keep = int(1000 * 0.9)
    x = np.log(np.sort(mu)[:keep])
    y = -np.log(1 - np.arange(1, keep + 1) / 1000)
    assert twonn_from_mu(mu) == pytest.approx((x @ y) / (x @ x), rel=1e-12)
    assert twonn_from_mu(mu, 0.1, "mle") == pytest.approx(4.0, rel=0.1)


KINDS = {
    "sphere": lambda n, d, s: sphere(n, d, s),
    "cube": lambda n, d, s: np.random.default_rng(s).uniform(size=(n, d)),
    "gaussian": lambda n, d, s: np.random.default_rng(s).normal(size=(n, d)),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_known_manifolds_within_ten_percent(kind, d):
    x = rotated(KINDS[kind](2500, d, d), seed=d)
    assert TwoNN().fit(x).dimension_ == pytest.approx(d, rel=0.10)
    assert MLE().fit(x).dimension_ == pytest.approx(d, rel=0.10)
    if kind != "sphere":  # a flat d-dim set spans d directions
        assert PCADim().fit(x).n_components_99_ == d


def test_rotation_and_translation_invariance():
    x = np.random.default_rng(4).normal(size=(1500, 6)) @ np.diag([3, 2, 1, 1, 0.5, 0.1])
    a = rotated(x, 40, seed=1)
    b = rotated(x, 40, seed=2)
    for make in (TwoNN, MLE, lambda: MLE(comb="mean")):
        assert make().fit(a).dimension_ == pytest.approx(make().fit(b).dimension_, rel=1e-9)
    assert PCADim().fit(a).participation_ratio_ == pytest.approx(
        PCADim().fit(b).participation_ratio_, rel=1e-9
    )


def test_pca_closed_form():
    rng = np.random.default_rng(5)
    n, lam = 500, np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.25])
    q, _ = np.linalg.qr(rng.normal(size=(n, len(lam))) - 0)
    q -= q.mean(axis=0)
    q, _ = np.linalg.qr(q)  # orthonormal, centred columns
    x = q * np.sqrt(lam * (n - 1))  # covariance (ddof=1) exactly diag(lam)
    pca = PCADim().fit(x)
    np.testing.assert_allclose(pca.eigenvalues_, lam, rtol=1e-9)
    assert pca.participation_ratio_ == pytest.approx(lam.sum() ** 2 / (lam**2).sum())
    # cumulative shares 0.508, 0.762, 0.889, 0.952, 0.984, 1: the smallest k reaching alpha
    assert pca.n_components_90_ == 4 and pca.n_components_95_ == 4
    assert pca.n_components_99_ == 6
    assert pca.n_components_fo_ == 5  # lambda > 0.05 * 8 = 0.4: all but 0.25


def _store(tmp_path, x, site="layer", chunks=3, step=None):
    writer = StoreWriter(tmp_path / f"s{step}", {"test": "id", "checkpoint_step": step})
    for rows in np.array_split(np.arange(len(x)), chunks):
        writer.append({site: x[rows]}, token_ids=None, example_index=rows, position=None)
    return writer.finalize()


def test_store_and_array_agree_and_subsample_is_seeded(tmp_path):
    x = rotated(np.random.default_rng(6).uniform(size=(3000, 3)), 32).astype(np.float32)
    store = _store(tmp_path, x)
    params = TwoNNParams(max_samples=1000, seed=7, n_bootstrap=50)
    a = run_twonn(Source.from_store(store, "layer"), params).headline
    b = run_twonn(Source(acts=x), params).headline
    assert a["dimension"] == pytest.approx(b["dimension"], rel=1e-12)
    assert a["n_samples"] == 1000 and a["n_input_rows"] == 3000
    assert a["bootstrap_std"] == b["bootstrap_std"] > 0
    assert a["bootstrap_q05"] < a["dimension"] < a["bootstrap_q95"]
    other = run_twonn(Source(acts=x), TwoNNParams(max_samples=1000, seed=8)).headline
    assert other["dimension"] != a["dimension"]
    # pca-dim streams the store chunk by chunk: same covariance as one pass over the array
    p_store = run_pca(Source.from_store(store, "layer"), PCAParams()).headline
    p_array = PCADim().fit(x.astype(np.float64))
    assert p_store["participation_ratio"] == pytest.approx(p_array.participation_ratio_, 1e-9)
    assert p_store["n_samples"] == 3000


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_duplicates_dropped_and_reported_or_refused():
    x = rotated(np.random.default_rng(8).normal(size=(800, 3)), 16)
    doubled = np.concatenate([x, x[:100]])
    result = run_twonn(Source(acts=doubled), TwoNNParams(n_bootstrap=0))
    assert result.headline["n_duplicates"] == 100 and result.headline["n_samples"] == 800
    assert result.headline["dimension"] == pytest.approx(TwoNN().fit(x).dimension_, rel=1e-12)
    assert any("100 duplicate" in w for w in result.headline["warnings"])
    with pytest.raises(InputError, match="100 rows duplicate"):
        run_mle(Source(acts=doubled), MLEParams(duplicates="error"))
    with pytest.raises(InputError, match="duplicates='keep'"):
        run_mle(Source(acts=x), MLEParams(duplicates="keep"))


@pytest.mark.filterwarnings("ignore:mle. (50 samples|estimate):UserWarning")
def test_bad_input_is_named():
    x = np.random.default_rng(9).normal(size=(50, 8))
    bad = x.copy()
    bad[7, 3] = np.nan
    with pytest.raises(InputError, match="row 7, column 3"):
        TwoNN().fit(bad)
    with pytest.raises(InputError, match="n_neighbors=20 needs more than 20"):
        MLE().fit(x[:15])
    with pytest.raises(InputError, match="comb='avg'"):
        MLE(comb="avg")
    with pytest.raises(InputError, match="discard_fraction=0"):
        TwoNN(discard_fraction=0.0)
    with pytest.raises(InputError, match="max_samples=-1"):
        run_twonn(Source(acts=x), TwoNNParams(max_samples=-1))
    const = np.concatenate([x, np.ones((50, 2))], axis=1)
    with pytest.warns(UserWarning, match="2 of 10 columns are constant"):
        run_mle(Source(acts=const), MLEParams(n_bootstrap=0))


def test_few_samples_warn():
    x = rotated(np.random.default_rng(10).normal(size=(200, 12)), 64)
    with pytest.warns(UserWarning) as caught:
        result = run_twonn(Source(acts=x), TwoNNParams())
    text = " ".join(str(w.message) for w in caught)
    assert "200 samples for ambient dimension 64" in text
    assert "Eckmann-Ruelle" in text  # d ~ 12 > 2 log10(200) = 4.6
    assert len(result.headline["warnings"]) == 2


def _cli_json(capsys, args):
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_json(tmp_path, capsys):
    x = rotated(np.random.default_rng(11).uniform(size=(2000, 4)), 64)
    path = tmp_path / "acts.npy"
    np.save(path, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = _cli_json(capsys, ["analyze", "twonn", "--acts", str(path), "--json"])
        mle = _cli_json(
            capsys,
            ["analyze", "mle", "--acts", str(path), "--set", "comb=mean", "--json"],
        )
        pca = _cli_json(capsys, ["analyze", "pca-dim", "--acts", str(path), "--json"])
    assert two["dimension"] == pytest.approx(TwoNN().fit(x).dimension_, rel=1e-12)
    assert two["dimension"] == pytest.approx(4, rel=0.1) and two["n_samples"] == 2000
    assert two["settings"]["discard_fraction"] == 0.1
    assert mle["dimension"] == pytest.approx(MLE(comb="mean").fit(x).dimension_, rel=1e-12)
    assert mle["settings"]["comb"] == "mean"
    assert pca["n_components_90"] <= 4 and pca["participation_ratio"] < 4.0
    assert {"n_components_95", "n_components_99", "n_samples", "settings"} <= set(pca)


def test_cli_store(tmp_path, capsys):
    x = rotated(np.random.default_rng(12).normal(size=(900, 3)), 24).astype(np.float32)
    store = _store(tmp_path, x, site="blocks.0.hook_resid_post", step=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _cli_json(
            capsys,
            ["analyze", "mle", "--store", str(store.path), "--site", "blocks.0.hook_resid_post"]
            + ["--json"],
        )
    assert out["dimension"] == pytest.approx(MLE().fit(x).dimension_, rel=1e-6)
    frame = run_mle(Source.from_store(store, "blocks.0.hook_resid_post"), MLEParams()).frame
    assert set(frame["checkpoint_step"]) == {5}
