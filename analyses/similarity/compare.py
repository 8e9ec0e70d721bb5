"""The five similarity measures on in-memory matrices (n, d_a), (n, d_b): their settings
dataclasses, the `Comparison` they return, and `compare(a, b, measure, **settings)`.

Definitions and conventions: `analyses/similarity/cca.py` (CCA family, Procrustes) and
`analyses/similarity/cka.py` (CKA). `analyses.similarity.stream` computes the same measures
from row batches; `analyses.similarity.analyses` registers them as analyses over a `Source`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analyses.similarity import cca as _cca
from analyses.similarity import cka as _cka
from analyses.similarity.cca import Basis
from workbench.errors import InputError

MEASURES = ("svcca", "cca", "pwcca", "cka", "procrustes")


@dataclass(frozen=True)
class CCAParams:
    """Settings shared by the CCA family and Procrustes.

    rtol: singular directions with s_i <= rtol * s_max are dropped (dead/collinear neurons).
    stream: compute from row batches (exact; for stores larger than memory).
    batch_size: rows per streamed batch.
    memory_limit_mb: a store pair larger than this (float64) is streamed automatically.
    """

    rtol: float = _cca.DEFAULT_RTOL
    stream: bool = False
    batch_size: int = 8192
    memory_limit_mb: int = 2048


@dataclass(frozen=True)
class SVCCAParams(CCAParams):
    """variance: fraction of each layer kept before CCA (Raghu et al. 2017: 0.99).
    reading: "squared" (default: fraction of variance, sum s_i^2) or "singular" (sum s_i, the
    google/svcca tutorial's reading)."""

    variance: float = 0.99
    reading: str = "squared"


@dataclass(frozen=True)
class CKAParams(CCAParams):
    """kernel: "linear" or "rbf"; debiased: the unbiased HSIC (Song et al. 2007);
    rbf_threshold: RBF bandwidth sigma = threshold * sqrt(median squared pairwise distance);
    max_rows: the RBF Gram form (O(n^2)) uses a seeded subsample of at most this many rows
    (0: all); minibatch: > 0 computes minibatch CKA (Nguyen et al. 2021) over shuffled batches
    of this size instead (any kernel; how RBF CKA streams; minibatch CKA always uses the
    unbiased HSIC_1, so `debiased` does not change it); seed: for both samplings."""

    kernel: str = "linear"
    debiased: bool = False
    rbf_threshold: float = 0.5
    max_rows: int = 4000
    minibatch: int = 0
    seed: int = 0


@dataclass
class Comparison:
    """One comparison: the similarity, and for the CCA family the correlations (descending)."""

    measure: str
    similarity: float
    correlations: np.ndarray | None = None
    weights: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def from_bases(measure: str, a: Basis, b: Basis, params: Any) -> Comparison:
    """A measure computed from two layer bases (shared by single comparisons and the maps)."""
    details: dict[str, Any] = {
        "n_rows": a.n_rows,
        "dims": [a.n_dims, b.n_dims],
        "rank": [a.rank, b.rank],
        "dead_neurons": [a.n_dead, b.n_dead],
    }
    if measure == "svcca":
        a, b = a.top(params.variance, params.reading), b.top(params.variance, params.reading)
        details["kept"] = [a.rank, b.rank]
    if measure in ("svcca", "cca"):
        rho = _cca.correlations(a, b)
        if measure == "cca":
            details["method"] = "svd"
        return Comparison(measure, float(rho.mean()) if len(rho) else 0.0, rho, None, details)
    if measure == "pwcca":
        value, rho, weights = _cca.pwcca(a, b)
        return Comparison(measure, value, rho, weights, details)
    if measure == "procrustes":
        value, distance = _cca.procrustes(a, b)
        return Comparison(measure, value, None, None, {**details, "distance": distance})
    if measure == "cka":
        if params.kernel != "linear":
            raise InputError(f"CKA from layer bases is linear only, not kernel {params.kernel!r}")
        value = _cca.linear_cka(a, b, params.debiased)
        return Comparison(measure, value, None, None, details)
    raise InputError(f"unknown similarity measure {measure!r}; valid: {', '.join(MEASURES)}")


def default_params(measure: str) -> Any:
    """The default settings dataclass of a measure."""
    kinds = {"svcca": SVCCAParams, "cka": CKAParams}
    if measure not in MEASURES:
        raise InputError(f"unknown similarity measure {measure!r}; valid: {', '.join(MEASURES)}")
    return kinds.get(measure, CCAParams)()


def compare(a: np.ndarray, b: np.ndarray, measure: str = "svcca", **settings: Any) -> Comparison:
    """Compare two in-memory matrices (n, d_a), (n, d_b) with `measure` and its settings."""
    params = replace(default_params(measure), **settings)
    return _compare_arrays(measure, a, b, params)


def _compare_arrays(measure: str, a: np.ndarray, b: np.ndarray, params: Any) -> Comparison:
    a, b, notes = _cca.check_pair(a, b)
    if measure == "cka" and (params.kernel != "linear" or params.minibatch > 0):
        result = _kernel_cka(a, b, params)
    elif measure == "cca":
        result = _plain_cca(a, b, params)
    else:
        result = from_bases(
            measure, _cca.decompose(a, params.rtol), _cca.decompose(b, params.rtol), params
        )
    result.warnings = notes
    return result


def _plain_cca(a: np.ndarray, b: np.ndarray, params: CCAParams) -> Comparison:
    """Plain CCA by the covariance route when both layers are well conditioned, else by the
    SVD route (`analyses.similarity.cca.covariance_correlations`: the thresholds and why);
    `details["method"]` is "covariance" or "svd", `details["condition"]` the 1-norm
    condition numbers of the column-scaled covariances (None where not computed). An `rtol`
    above the default asks to drop small directions, which only the SVD route does."""
    rho: np.ndarray | None = None
    condition: list[float | None] = [None, None]
    if params.rtol <= _cca.DEFAULT_RTOL:
        rho, condition = _cca.covariance_correlations(a, b)
    if rho is None:
        result = from_bases(
            "cca", _cca.decompose(a, params.rtol), _cca.decompose(b, params.rtol), params
        )
        result.details["condition"] = condition
        return result
    details: dict[str, Any] = {
        "n_rows": len(a),
        "dims": [a.shape[1], b.shape[1]],
        "rank": [a.shape[1], b.shape[1]],
        "dead_neurons": [0, 0],
        "method": "covariance",
        "condition": condition,
    }
    return Comparison("cca", float(rho.mean()) if len(rho) else 0.0, rho, None, details)


def _kernel_cka(a: np.ndarray, b: np.ndarray, params: CKAParams) -> Comparison:
    if params.kernel not in _cka.KERNELS:
        raise InputError(f"kernel {params.kernel!r} is not one of {', '.join(_cka.KERNELS)}")
    details: dict[str, Any] = {"n_rows": len(a), "dims": [a.shape[1], b.shape[1]]}
    if params.minibatch > 0:
        est = _cka.MinibatchCKA(params.kernel, params.rbf_threshold)
        order = np.random.default_rng(params.seed).permutation(len(a))
        for start in range(0, len(a), params.minibatch):
            rows = order[start : start + params.minibatch]
            est.update(a[rows], b[rows])
        details.update(minibatches=est.n_batches, estimator="minibatch unbiased HSIC_1")
        return Comparison("cka", est.cka_, details=details)
    if params.max_rows and len(a) > params.max_rows:
        rows = np.sort(np.random.default_rng(params.seed).choice(len(a), params.max_rows, False))
        a, b = a[rows], b[rows]
        details["rows_used"] = len(rows)
    value = _cka.cka_gram(
        _cka.gram_rbf(a, params.rbf_threshold),
        _cka.gram_rbf(b, params.rbf_threshold),
        params.debiased,
    )
    return Comparison("cka", value, details=details)
