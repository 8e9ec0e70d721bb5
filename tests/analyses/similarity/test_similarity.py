"""Representation similarity against ground truth: invariances, closed forms, reference values
(METHODS.md 2), random baselines, streaming = in-memory, bad input, CLI and store input."""

import contextlib
import io
import json

import numpy as np
import pytest

from analyses.similarity import cca as _cca
from analyses.similarity import cka as _cka
from analyses.similarity.analyses import ANALYSES, run_cca, run_svcca
from analyses.similarity.compare import compare
from workbench.analysis.registry import analyses
from workbench.analysis.sources import Source
from workbench.errors import InputError

MEASURES = ["svcca", "cca", "pwcca", "cka", "procrustes"]


def planted(n=2000, d_a=30, d_b=20, noise=1.0, seed=0):
    """B depends linearly on A plus noise; A has correlated, offset columns."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d_a)) @ rng.normal(size=(d_a, d_a)) + 3.0
    b = a @ rng.normal(size=(d_a, d_b)) + noise * rng.normal(size=(n, d_b)) * 4
    return a, b


def textbook_cca(a, b):
    """Canonical correlations by covariance and inverse square roots (Hotelling), for checks."""
    n1 = a.shape[1]
    cov = np.cov(a.T, b.T)
    sxx, syy, sxy = cov[:n1, :n1], cov[n1:, n1:], cov[:n1, n1:]

    def inv_sqrt(m):
        w, v = np.linalg.eigh(m)
        return (v / np.sqrt(w)) @ v.T

    return np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)


def demo_data():
    """The CKA demo's data (METHODS.md 2.3): seed 1337, X ~ N(0,1) (100, 10), Y = noise + X."""
    rs = np.random.RandomState(1337)
    x = rs.randn(100, 10)
    return x, rs.randn(100, 10) + x


def test_registered_with_two_inputs():
    found = analyses()
    for analysis in ANALYSES:
        assert found[analysis.name] is analysis
        assert analysis.inputs == ("acts", "acts_b")
    assert sorted(a.name for a in ANALYSES) == sorted(MEASURES)


def test_cca_matches_textbook_formula():
    a, b = planted()
    ours = compare(a, b, "cca").correlations
    np.testing.assert_allclose(ours, textbook_cca(a, b)[: len(ours)], atol=1e-10)


@pytest.mark.parametrize("measure", ["cca", "pwcca"])
def test_cca_of_invertible_map_is_one(measure):
    a, _ = planted()
    m = np.random.default_rng(5).normal(size=(30, 30))
    result = compare(a, a @ m + 7.0, measure)
    assert result.similarity == pytest.approx(1.0, abs=1e-9)
    assert np.all(result.correlations > 1 - 1e-9)


def test_svcca_full_variance_of_invertible_map_is_one_and_truncation_matters():
    a, _ = planted()
    m = np.random.default_rng(5).normal(size=(30, 30))
    assert compare(a, a @ m, "svcca", variance=1.0).similarity == pytest.approx(1.0, abs=1e-9)
    # with 0.99 each side keeps its own top directions, which M changes: < 1 but still high
    kept = compare(a, a @ m, "svcca")
    assert kept.details["kept"][0] < 30 and 0.5 < kept.similarity < 1.0


def test_svcca_variance_readings():
    s = np.array([4.0, 2.0, 1.0, 1.0])
    # squared: 16/22 = 0.727, 20/22 = 0.909, 21/22 = 0.955; singular: 4/8, 6/8, 7/8
    assert _cca.n_directions(s, 0.9, "squared") == 2
    assert _cca.n_directions(s, 0.95, "squared") == 3
    assert _cca.n_directions(s, 0.75, "singular") == 2
    assert _cca.n_directions(s, 0.8, "singular") == 3
    with pytest.raises(InputError, match="reading"):
        _cca.n_directions(s, 0.9, "sq")
    with pytest.raises(InputError, match="0, 1"):
        _cca.n_directions(s, 1.5)


def test_pwcca_weights_are_projection_weights():
    a, b = planted(d_a=12, d_b=12)
    result = compare(a, b, "pwcca")
    assert result.weights.sum() == pytest.approx(1.0)
    # closed form: alpha_i = sum_j |<h_i, z_j>| with h_i the canonical variates of A
    ac, bc = a - a.mean(0), b - b.mean(0)
    qa, qb = np.linalg.qr(ac)[0], np.linalg.qr(bc)[0]
    left, rho, _ = np.linalg.svd(qa.T @ qb)
    alpha = np.abs((qa @ left).T @ ac).sum(axis=1)
    np.testing.assert_allclose(result.weights, alpha / alpha.sum(), atol=1e-10)
    assert result.similarity == pytest.approx(float(alpha @ rho / alpha.sum()), abs=1e-10)


def test_cka_reference_values_from_the_demo():
    """METHODS.md 2.3: the google-research CKA demo's printed values."""
    x, y = demo_data()
    assert compare(x, y, "cka").similarity == pytest.approx(0.55761, abs=5e-6)
    assert _cka.cka_gram(_cka.gram_linear(x), _cka.gram_linear(y)) == pytest.approx(
        0.55761, abs=5e-6
    )
    assert compare(x, y, "cka", debiased=True).similarity == pytest.approx(0.51346, abs=5e-6)
    assert _cka.cka_gram(_cka.gram_linear(x), _cka.gram_linear(y), True) == pytest.approx(
        0.51346, abs=5e-6
    )
    assert compare(x, y, "cka", kernel="rbf").similarity == pytest.approx(0.65483, abs=5e-6)
    # R^2_CCA: mean squared canonical correlation, computed without centring in the demo
    rho = _cca.correlations(_cca.decompose(x, centre=False), _cca.decompose(y, centre=False))
    assert float(np.mean(rho**2)) == pytest.approx(0.54312, abs=5e-6)


@pytest.mark.parametrize(
    "settings", [{}, {"debiased": True}, {"kernel": "rbf"}, {"kernel": "rbf", "debiased": True}]
)
def test_cka_invariances(settings):
    a, b = planted(n=600, noise=2.0)
    rng = np.random.default_rng(3)
    q = np.linalg.qr(rng.normal(size=(30, 30)))[0]
    base = compare(a, b, "cka", **settings).similarity
    assert compare(a @ q, b, "cka", **settings).similarity == pytest.approx(base, abs=1e-9)
    assert compare(7.5 * a, b, "cka", **settings).similarity == pytest.approx(base, abs=1e-9)
    stretch = np.diag(np.geomspace(0.05, 20, 30)) @ rng.normal(size=(30, 30))
    assert abs(compare(a @ stretch, b, "cka", **settings).similarity - base) > 0.02


def test_procrustes_invariant_to_rotation_and_scale_not_stretch():
    a, b = planted(noise=2.0)
    q = np.linalg.qr(np.random.default_rng(3).normal(size=(30, 30)))[0]
    base = compare(a, b, "procrustes")
    assert compare(3 * a @ q, b, "procrustes").similarity == pytest.approx(base.similarity)
    assert base.details["distance"] == pytest.approx(2 - 2 * base.similarity)
    assert compare(a, a @ q, "procrustes").similarity == pytest.approx(1.0)
    stretch = np.diag(np.geomspace(0.05, 20, 30))
    assert compare(a, a @ stretch, "procrustes").similarity < 0.95
    # closed form: min over rotations of ||A_n - B_n R||_F^2 for unit-norm centred layers
    ac, bc = a - a.mean(0), (a @ q) * 2 - 1
    bc = bc - bc.mean(0)
    ac, bc = ac / np.linalg.norm(ac), bc / np.linalg.norm(bc)
    u, _, vt = np.linalg.svd(bc.T @ ac)
    assert np.linalg.norm(ac - bc @ (u @ vt)) ** 2 == pytest.approx(0.0, abs=1e-9)


def test_random_baselines_fall_with_more_samples():
    rng = np.random.default_rng(0)
    values = {}
    for n in (2000, 8000):
        a, b = rng.normal(size=(n, 100)), rng.normal(size=(n, 50))
        values[n] = {m: compare(a, b, m).similarity for m in ("cca", "cka")}
        values[n]["debiased"] = compare(a, b, "cka", debiased=True).similarity
    # METHODS.md 2.1: 100 vs 50 iid Gaussian neurons x 2000 points: mean CCA ~0.21
    assert values[2000]["cca"] == pytest.approx(0.21, abs=0.015)
    assert values[8000]["cca"] < 0.6 * values[2000]["cca"]
    assert values[8000]["cka"] < 0.5 * values[2000]["cka"]
    for n in values:
        assert abs(values[n]["debiased"]) < 0.005


def test_minibatch_cka_agrees_with_full_debiased():
    a, b = planted(n=4096, noise=3.0)
    full = compare(a, b, "cka", debiased=True).similarity
    mini = compare(a, b, "cka", minibatch=256).similarity
    assert 0.2 < full < 0.95
    assert mini == pytest.approx(full, abs=0.01)


def test_dead_and_collinear_neurons():
    a, b = planted(d_a=10)
    dead = np.hstack([a, np.full((len(a), 3), 2.0), a[:, :2] * 3 - a[:, 2:4]])
    base = compare(a, b, "cca")
    result = compare(dead, b, "cca")
    assert result.details["dead_neurons"][0] == 3
    assert result.details["rank"][0] == 10
    np.testing.assert_allclose(result.correlations, base.correlations, atol=1e-9)
    assert compare(dead, b, "pwcca").similarity == pytest.approx(
        compare(a, b, "pwcca").similarity, abs=0.05
    )
    assert np.isfinite(compare(dead, b, "cka").similarity)


def test_bad_input():
    a, b = planted()
    with pytest.raises(InputError, match="2000 rows but acts_b has 1999"):
        compare(a, b[:-1], "svcca")
    nan = a.copy()
    nan[5, 3] = np.nan
    with pytest.raises(InputError, match="NaN.*row 5, column 3"):
        compare(nan, b, "cca")
    with pytest.raises(InputError, match="constant"):
        compare(np.ones_like(a), b, "cka")
    with pytest.raises(InputError, match="2-D"):
        compare(a[:, 0, None, None], b, "cca")
    with pytest.raises(InputError, match="kernel"):
        compare(a, b, "cka", kernel="cosine")


def test_fewer_rows_than_dims_warns_and_says_so():
    a, b = planted(n=20)
    with pytest.warns(UserWarning, match="only 20 rows"):
        result = run_cca(Source(acts=a, acts_b=b), run_cca_params())
    assert "only 20 rows" in result.headline["warnings"][0]


def run_cca_params():
    from analyses.similarity.compare import CCAParams

    return CCAParams()


def _stream_params(measure, **extra):
    from dataclasses import replace

    from analyses.similarity.compare import default_params

    return replace(default_params(measure), stream=True, batch_size=333, **extra)


@pytest.fixture
def pair_store(tmp_path):
    from workbench.store import StoreWriter

    a, b = planted(n=1500)
    writer = StoreWriter(tmp_path / "s", {"test": "similarity"})
    for rows in (slice(0, 700), slice(700, 1500)):
        writer.append(
            {"la": a[rows].astype(np.float32), "lb": b[rows].astype(np.float32)},
            token_ids=None,
            example_index=np.arange(1500)[rows],
            position=None,
        )
    return writer.finalize(), a.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize("measure", MEASURES)
def test_streaming_equals_in_memory_on_a_store(pair_store, measure):
    from analyses.similarity.compare import default_params

    store, a, b = pair_store
    run = {x.name: x.run for x in ANALYSES}[measure]
    source = Source.from_store(store, "la", site_b="lb")
    memory = run(source, default_params(measure)).headline
    streamed = run(source, _stream_params(measure)).headline
    assert streamed["streamed"] is True and "streamed" not in memory
    assert streamed["similarity"] == pytest.approx(memory["similarity"], abs=1e-9)
    arrays = run(Source(acts=a, acts_b=b), default_params(measure)).headline
    assert arrays["similarity"] == pytest.approx(memory["similarity"], abs=1e-9)
    if "correlations" in memory:
        np.testing.assert_allclose(streamed["correlations"], memory["correlations"], atol=1e-9)


def test_streaming_debiased_and_minibatch_cka(pair_store):
    from dataclasses import replace

    from analyses.similarity.analyses import run_cka
    from analyses.similarity.compare import default_params

    store, a, b = pair_store
    source = Source.from_store(store, "la", site_b="lb")
    exact = compare(a, b, "cka", debiased=True).similarity
    assert run_cka(source, _stream_params("cka", debiased=True)).headline[
        "similarity"
    ] == pytest.approx(exact, abs=1e-9)
    mini = run_cka(source, _stream_params("cka", minibatch=250)).headline
    assert mini["minibatches"] == 6 and mini["similarity"] == pytest.approx(exact, abs=0.03)
    # a store over the memory limit streams by itself
    auto = run_cka(source, replace(default_params("cka"), memory_limit_mb=0)).headline
    assert auto["streamed"] is True


def _cli(args):
    from workbench.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["analyze", *args, "--json"]) == 0
    return json.loads(out.getvalue())


@pytest.mark.parametrize("measure", MEASURES)
def test_cli_json(tmp_path, measure):
    a, b = planted(n=500, d_a=8, d_b=6)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    payload = _cli(
        [measure, "--acts", str(tmp_path / "a.npy"), "--acts-b", str(tmp_path / "b.npy")]
    )
    assert payload["analysis"] == measure
    assert payload["similarity"] == pytest.approx(compare(a, b, measure).similarity)
    assert ("correlations" in payload) == (measure in ("svcca", "cca", "pwcca"))
    assert "rtol" in payload["settings"]


def test_cli_settings_and_store(tmp_path, pair_store):
    store, a, b = pair_store
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    rbf = _cli(
        [
            "cka",
            "--acts",
            str(tmp_path / "a.npy"),
            "--acts-b",
            str(tmp_path / "b.npy"),
            "--set",
            "kernel=rbf",
            "--set",
            "rbf_threshold=1.0",
        ]
    )
    assert rbf["settings"]["kernel"] == "rbf" and rbf["settings"]["rbf_threshold"] == 1.0
    assert rbf["similarity"] == pytest.approx(
        compare(a, b, "cka", kernel="rbf", rbf_threshold=1.0).similarity
    )
    stored = _cli(["svcca", "--store", str(store.path), "--site", "la", "--site-b", "lb"])
    assert stored["similarity"] == pytest.approx(compare(a, b, "svcca").similarity, abs=1e-9)
    assert stored["settings"]["variance"] == 0.99


def test_result_frame_and_figures():
    a, b = planted(n=400, d_a=6, d_b=5)
    result = run_svcca(Source(acts=a, acts_b=b), ANALYSES[0].params())
    frame = result.to_frame()
    assert set(frame["metric"]) == {"similarity", "correlation"}
    corr = frame[frame["metric"] == "correlation"]["value"].to_numpy()
    assert np.all(np.diff(corr) <= 1e-12) and result.headline["similarity"] == pytest.approx(
        corr.mean()
    )
    assert len(result.figures()) == 2
