"""Plain CCA's two routes (analyses/similarity/cca.py): the covariance route runs on
well-conditioned layers and agrees with the SVD route; ill-conditioned, rank-deficient and
nearly collinear layers take the SVD route and stay correct. Closed forms: CCA(X, X A) = 1 for
invertible A; planted canonical correlations of a constructed pair."""

import numpy as np
import pytest

from analyses.similarity import cca as _cca
from analyses.similarity.analyses import run_cca
from analyses.similarity.compare import CCAParams, compare
from workbench.analysis.sources import Source


def svd_route(a, b):
    """The SVD route on its own (thin SVD of each centred layer, SVD of U_a^T U_b)."""
    return _cca.correlations(_cca.decompose(a), _cca.decompose(b))


def conditioned(d, kappa, rng):
    """A (d, d) matrix with 2-norm condition number `kappa` (random singular vectors)."""
    u = np.linalg.qr(rng.normal(size=(d, d)))[0]
    v = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return (u * np.geomspace(1.0, 1.0 / kappa, d)) @ v


def planted_pair(rho, n=3000, d_b=None, kappa=10.0, seed=0):
    """(X, Y) whose sample canonical correlations are exactly `rho` (descending, length d),
    each side mixed by an invertible matrix of condition number `kappa` and offset.

    X0, W: orthonormal centred columns (QR of a centred Gaussian); Y0_i = rho_i X0_i +
    sqrt(1 - rho_i^2) W_i, so X0^T Y0 = diag(rho) with X0, Y0 orthonormal bases; CCA is
    invariant to invertible maps of either side."""
    rng = np.random.default_rng(seed)
    d = len(rho)
    z = rng.normal(size=(n, 2 * d))
    q = np.linalg.qr(z - z.mean(axis=0))[0]
    x0, w = q[:, :d], q[:, d:]
    y0 = x0 * rho + w * np.sqrt(1 - rho**2)
    x = x0 @ conditioned(d, kappa, rng) + 3.0
    y = y0 @ conditioned(d, kappa, rng) - 1.0
    return x, y


RHO = np.linspace(0.98, 0.05, 24)


def test_well_conditioned_layers_take_the_covariance_route_with_equal_values():
    x, y = planted_pair(RHO, kappa=100.0)
    result = compare(x, y, "cca")
    assert result.details["method"] == "covariance"
    assert all(1.0 <= c < _cca.COVARIANCE_MAX_CONDITION for c in result.details["condition"])
    np.testing.assert_allclose(result.correlations, svd_route(x, y), atol=1e-11)
    np.testing.assert_allclose(result.correlations, RHO, atol=1e-11)
    # different widths: min(d_a, d_b) correlations, the same on both routes
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2000, 12)) @ conditioned(12, 30.0, rng)
    b = a[:, :7] @ rng.normal(size=(7, 9)) + rng.normal(size=(2000, 9))
    result = compare(a, b, "cca")
    assert result.details["method"] == "covariance" and len(result.correlations) == 9
    np.testing.assert_allclose(result.correlations, svd_route(a, b), atol=1e-11)


def test_invertible_map_gives_all_ones_on_both_routes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 20)) @ conditioned(20, 10.0, rng) + 5.0
    good = compare(x, x @ conditioned(20, 50.0, rng), "cca")
    assert good.details["method"] == "covariance"
    np.testing.assert_allclose(good.correlations, 1.0, atol=1e-12)
    bad = compare(x, x @ conditioned(20, 1e7, rng), "cca")  # kappa(S) = 1e14
    assert bad.details["method"] == "svd"
    assert bad.details["condition"][1] is None or bad.details["condition"][1] > 1e8
    np.testing.assert_allclose(bad.correlations, 1.0, atol=1e-8)


def test_ill_conditioned_layers_take_the_svd_route_and_stay_correct():
    x, y = planted_pair(RHO, kappa=1e6)  # kappa(S) = 1e12: the covariance route would err
    result = compare(x, y, "cca")
    assert result.details["method"] == "svd"
    np.testing.assert_allclose(result.correlations, RHO, atol=1e-9)


def test_rank_deficient_and_nearly_collinear_layers_take_the_svd_route():
    x, y = planted_pair(RHO, n=2000)
    rng = np.random.default_rng(2)
    # exactly collinear: a combination of two columns; the rank stays 24
    collinear = np.hstack([x, x[:, :1] * 2.0 - x[:, 1:2]])
    result = compare(collinear, y, "cca")
    assert result.details["method"] == "svd" and result.details["rank"][0] == len(RHO)
    np.testing.assert_allclose(result.correlations, RHO, atol=1e-10)
    # nearly collinear: a copy plus 1e-9 noise, a direction of relative size ~1e-9
    near = np.hstack([x, x[:, :1] + 1e-9 * rng.normal(size=(len(x), 1))])
    result = compare(near, near @ conditioned(near.shape[1], 10.0, rng), "cca")
    assert result.details["method"] == "svd"
    np.testing.assert_allclose(result.correlations, 1.0, atol=1e-6)
    # a dead (constant) column
    dead = np.hstack([x, np.full((len(x), 1), 0.1)])
    result = compare(dead, y, "cca")
    assert result.details["method"] == "svd" and result.details["dead_neurons"][0] == 1
    np.testing.assert_allclose(result.correlations, RHO, atol=1e-10)


def test_fewer_rows_than_neurons_takes_the_svd_route():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 40)), rng.normal(size=(30, 10))
    with pytest.warns(UserWarning, match="only 30 rows"):
        result = compare(a, b, "cca")
    assert result.details["method"] == "svd"
    rho, conditions = _cca.covariance_correlations(a, b)
    assert rho is None and conditions == [None, None]


def test_badly_scaled_columns_decline_the_covariance_route():
    x, y = planted_pair(RHO, n=2000)
    scaled = x * np.geomspace(1.0, 1e-6, x.shape[1])  # variance ratio 1e12 > the limit
    result = compare(scaled, y, "cca")
    assert result.details["method"] == "svd"
    np.testing.assert_allclose(result.correlations, RHO, atol=1e-9)


def test_the_route_is_in_the_result_headline():
    x, y = planted_pair(RHO, n=1000)
    headline = run_cca(Source(acts=x, acts_b=y), CCAParams()).headline
    assert headline["method"] == "covariance"
    assert len(headline["condition"]) == 2
    streamed = run_cca(Source(acts=x, acts_b=y), CCAParams(stream=True, batch_size=300)).headline
    assert streamed["method"] == "svd"
    np.testing.assert_allclose(streamed["correlations"], headline["correlations"], atol=1e-10)


def test_a_larger_rtol_asks_for_the_svd_route():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(800, 10)) * np.geomspace(1.0, 1e-3, 10)  # well conditioned: kappa 1e3
    y = x @ rng.normal(size=(10, 6)) + rng.normal(size=(800, 6))
    assert compare(x, y, "cca").details["method"] == "covariance"
    truncated = compare(x, y, "cca", rtol=1e-2)  # drops the directions below 1e-2 s_max
    assert truncated.details["method"] == "svd" and truncated.details["rank"][0] < 10
