"""Intrinsic dimension of a point cloud of activations: TwoNN, MLE and PCA-based estimators.

Each estimator is a small scikit-learn-style class (`TwoNN().fit(X).dimension_`) and a
registered analysis (`twonn`, `mle`, `pca-dim`) that reads an array or a store site. Conventions
follow scikit-dimension 0.5.0 (`skdim.id`), whose regression values the tests reproduce:

- **TwoNN** (Facco, d'Errico, Rodriguez & Laio, Sci. Rep. 7, 12140, 2017): mu_i = r2_i / r1_i
  (distances to the first and second nearest neighbours). Sort mu, keep the
  `int(N (1 - discard_fraction))` smallest (10% of the largest discarded by default), empirical
  CDF F_i = i / N with N = **all** points (skdim after commit 702f4df; DADApy agrees), and fit
  -log(1 - F_i) = d log mu_i by least squares **through the origin**: d = sum(x y) / sum(x^2).
  `method="mle"` is the censored maximum-likelihood form
  d = (n_keep - 1) / (sum_{i <= n_keep} log mu_(i) + (N - n_keep) log mu_(n_keep)).
- **MLE** (Levina & Bickel, NIPS 2005): local m_k(x) = (k - 1) / sum_{j=1}^{k} log(T_k / T_j)
  over the distances T_1 <= ... <= T_k to the k nearest neighbours (`unbiased=True` uses k - 2).
  Combined over points by `comb`: "mle" (default, as skdim) = harmonic mean 1 / mean(1 / m_k),
  the MacKay & Ghahramani (2005) correction; "mean" = the original Levina-Bickel average;
  "median".
- **PCA** (skdim `lPCA`): eigenvalues lambda of the covariance (ddof = 1).
  Participation ratio (sum lambda)^2 / sum lambda^2 (Gao et al. 2017); the number of components
  for 90/95/99% of the variance, `sum(cumsum(lambda) / sum(lambda) < alpha) + 1` (skdim's
  "ratio"); and skdim's default "FO" count #{lambda_i > 0.05 lambda_1}.

Neighbour searches are exact blocked brute force (`analyses.geometry.neighbours`), shared between
estimators on the same rows through a content-keyed cache (`analyses.geometry.knn_cache`: TwoNN
then MLE on one subsample cost one search). Duplicate rows give
zero distances, which break both ratio estimators: they are dropped (and counted) by default.
TwoNN and MLE use a seeded subsample of `max_samples` rows (0 = all) and report a bootstrap
spread: the points' local statistics (mu_i, or m_k(x_i)) are resampled with replacement and
the estimate recomputed, neighbours held fixed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from analyses.geometry.knn_cache import shared_distances
from analyses.geometry.neighbours import (
    check_rows,
    duplicate_mask,
    sample_rows,
    site_frame,
)
from workbench.analysis.registry import Analysis
from workbench.analysis.results import Result
from workbench.analysis.sources import Source
from workbench.errors import InputError


def twonn_from_mu(mu: np.ndarray, discard_fraction: float = 0.1, method: str = "linear") -> float:
    """TwoNN dimension from the ratios mu (N,) = r2 / r1 (see the module docstring)."""
    n = len(mu)
    n_keep = int(n * (1 - discard_fraction))
    if n_keep < 2:
        raise InputError(f"TwoNN keeps {n_keep} of {n} ratios; it needs at least 2 (more points)")
    log_mu = np.log(np.sort(mu)[:n_keep])
    if method == "mle":
        return float((n_keep - 1) / (log_mu.sum() + (n - n_keep) * log_mu[-1]))
    y = -np.log(1 - np.arange(1, n_keep + 1) / n)
    return float((log_mu @ y) / (log_mu @ log_mu))


def mle_local(dists: np.ndarray, unbiased: bool = False) -> np.ndarray:
    """Levina-Bickel local dimensions (n,) from ascending neighbour distances (n, k)."""
    k = dists.shape[1]
    kfac = k - 2 if unbiased else k - 1
    return kfac / np.log(dists[:, -1:] / dists).sum(axis=1)


def combine(local: np.ndarray, comb: str) -> float:
    """Local estimates -> one number: "mle" (harmonic mean), "mean" or "median"."""
    if comb == "mle":
        return float(1.0 / np.mean(1.0 / local))
    if comb == "mean":
        return float(np.mean(local))
    return float(np.median(local))


def _check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise InputError(f"{name}={value!r} is not valid; valid: {', '.join(valid)}")


def _distinct(x: np.ndarray, duplicates: str) -> tuple[np.ndarray, int]:
    """Drop exact duplicate rows (`duplicates="drop"`) or refuse them ("error")."""
    _check_choice("duplicates", duplicates, ("drop", "error"))
    dup = duplicate_mask(x)
    n_dup = int(dup.sum())
    if n_dup and duplicates == "error":
        raise InputError(
            f"{n_dup} rows duplicate other rows (first: row {int(np.flatnonzero(dup)[0])}); "
            "zero distances break TwoNN/MLE: pass duplicates=drop or remove them"
        )
    return (x[~dup] if n_dup else x), n_dup


class TwoNN:
    """TwoNN estimator: `TwoNN(discard_fraction=0.1).fit(X).dimension_`.

    Learned: `dimension_`, `mu_` (N,) ratios r2/r1, `n_samples_` (distinct rows used),
    `n_duplicates_` (rows dropped).
    """

    def __init__(self, discard_fraction: float = 0.1, method: str = "linear") -> None:
        _check_choice("method", method, ("linear", "mle"))
        low = 0.0 if method == "mle" else np.nextafter(0.0, 1.0)
        if not low <= discard_fraction < 1:
            raise InputError(
                f"discard_fraction={discard_fraction} must be in {'[0' if low == 0 else '(0'}, 1)"
            )
        self.discard_fraction = discard_fraction
        self.method = method

    def fit(self, x: Any, duplicates: str = "drop") -> TwoNN:
        x = np.asarray(x, dtype=np.float64)
        check_rows(x)
        x, self.n_duplicates_ = _distinct(x, duplicates)
        if len(x) < 3:
            raise InputError(f"TwoNN needs at least 3 distinct points, got {len(x)}")
        dists = shared_distances(x, 2)
        self.mu_ = dists[:, 1] / dists[:, 0]
        self.n_samples_ = len(x)
        self.dimension_ = twonn_from_mu(self.mu_, self.discard_fraction, self.method)
        return self


class MLE:
    """Levina-Bickel estimator: `MLE(n_neighbors=20, comb="mle").fit(X).dimension_`.

    Learned: `dimension_`, `local_` (N,) per-point estimates, `n_samples_`, `n_duplicates_`.
    """

    def __init__(self, n_neighbors: int = 20, comb: str = "mle", unbiased: bool = False) -> None:
        _check_choice("comb", comb, ("mle", "mean", "median"))
        if n_neighbors < 2 + int(unbiased):
            raise InputError(f"n_neighbors={n_neighbors} must be >= {2 + int(unbiased)}")
        self.n_neighbors = n_neighbors
        self.comb = comb
        self.unbiased = unbiased

    def fit(self, x: Any, duplicates: str = "drop") -> MLE:
        x = np.asarray(x, dtype=np.float64)
        check_rows(x)
        x, self.n_duplicates_ = _distinct(x, duplicates)
        if len(x) <= self.n_neighbors:
            raise InputError(
                f"n_neighbors={self.n_neighbors} needs more than {self.n_neighbors} distinct "
                f"samples, got {len(x)}; lower n_neighbors (e.g. --set n_neighbors="
                f"{max(2, len(x) // 2)}) or pass more rows"
            )
        self.local_ = mle_local(shared_distances(x, self.n_neighbors), self.unbiased)
        self.n_samples_ = len(x)
        self.dimension_ = combine(self.local_, self.comb)
        return self


def pca_summary(eigenvalues: np.ndarray) -> dict[str, float]:
    """PCA dimensions from covariance eigenvalues (any order; see the module docstring)."""
    lam = np.sort(np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None))[::-1]
    total = lam.sum()
    if total <= 0:
        raise InputError("every column is constant: the covariance is zero, no PCA dimension")
    ratio = np.cumsum(lam) / total
    out = {"participation_ratio": float(total**2 / (lam**2).sum())}
    for pct in (90, 95, 99):
        out[f"n_components_{pct}"] = int(np.sum(ratio < pct / 100) + 1)
    out["n_components_fo"] = int(np.sum(lam > 0.05 * lam[0]))
    return out


def covariance(rows: Any) -> tuple[np.ndarray, int]:
    """Covariance (D, D) with ddof = 1 over an iterable of (b, D) batches, merged exactly in
    float64 (Chan, Golub & LeVeque 1979), and the row count."""
    n, mean, scatter = 0, None, None
    for batch in rows:
        b = np.asarray(batch, dtype=np.float64)
        check_rows(b)
        bm = b.mean(axis=0)
        bs = (b - bm).T @ (b - bm)
        if mean is None or scatter is None:
            n, mean, scatter = len(b), bm, bs
            continue
        delta = bm - mean
        total = n + len(b)
        scatter = scatter + bs + np.outer(delta, delta) * (n * len(b) / total)
        mean = mean + delta * (len(b) / total)
        n = total
    if scatter is None or n < 2:
        raise InputError(f"PCA needs at least 2 rows, got {n}")
    return scatter / (n - 1), n


class PCADim:
    """PCA dimensions: `PCADim().fit(X).participation_ratio_` (also `n_components_90_`, ...,
    `eigenvalues_` descending)."""

    def fit(self, x: Any) -> PCADim:
        cov, self.n_samples_ = covariance([np.asarray(x, dtype=np.float64)])
        self.eigenvalues_ = np.linalg.eigvalsh(cov)[::-1]
        for key, value in pca_summary(self.eigenvalues_).items():
            setattr(self, key + "_", value)
        return self


# -- registered analyses ---------------------------------------------------------------------


@dataclass(frozen=True)
class TwoNNParams:
    """TwoNN settings; `max_samples` rows (0 = all) drawn with `seed`; `n_bootstrap`
    resamples of the ratios give the spread; `duplicates`: "drop" or "error"."""

    discard_fraction: float = 0.1
    method: str = "linear"
    max_samples: int = 5000
    seed: int = 0
    n_bootstrap: int = 200
    duplicates: str = "drop"


@dataclass(frozen=True)
class MLEParams:
    """MLE settings (k = `n_neighbors`; `comb`: "mle" harmonic mean, "mean", "median")."""

    n_neighbors: int = 20
    comb: str = "mle"
    unbiased: bool = False
    max_samples: int = 5000
    seed: int = 0
    n_bootstrap: int = 200
    duplicates: str = "drop"


@dataclass(frozen=True)
class PCAParams:
    """PCA settings: every row is used (streamed) unless `max_samples` > 0; `n_bootstrap` row
    resamples (of at most `max_samples` or 5000 rows) give the spread of the participation
    ratio."""

    max_samples: int = 0
    seed: int = 0
    n_bootstrap: int = 0


def sample_warnings(n: int, ambient: int, dimension: float | None) -> list[str]:
    """Warnings about too few samples: fewer than 10 per ambient dimension, and an estimate
    above 2 log10(n), the most a sample of n points can resolve (Eckmann & Ruelle 1992)."""
    notes = []
    if n < 10 * ambient:
        notes.append(
            f"{n} samples for ambient dimension {ambient} (< 10 per dimension): "
            "estimates may be biased low; pass more rows (max_samples=0 uses all)"
        )
    if dimension is not None and dimension > 2 * math.log10(max(n, 2)):
        notes.append(
            f"estimate {dimension:.3g} exceeds 2 log10(n) = {2 * math.log10(n):.3g} "
            "(Eckmann-Ruelle bound): the sample is too small to resolve it; it is likely an "
            "underestimate"
        )
    return notes


def _bootstrap(local: np.ndarray, stat: Any, n_boot: int, seed: int) -> dict[str, float]:
    """Spread of `stat(local[resample])` over `n_boot` resamples with replacement (seed + 1)."""
    if n_boot <= 0:
        return {}
    rng = np.random.default_rng(seed + 1)
    draws = np.array([stat(local[rng.integers(0, len(local), len(local))]) for _ in range(n_boot)])
    return {
        "bootstrap_std": float(draws.std(ddof=1)) if n_boot > 1 else 0.0,
        "bootstrap_q05": float(np.quantile(draws, 0.05)),
        "bootstrap_q95": float(np.quantile(draws, 0.95)),
    }


def _result(
    name: str, source: Source, params: Any, metrics: dict[str, float], info: dict[str, Any]
) -> Result:
    notes = info.pop("warnings")
    for note in notes:
        warnings.warn(f"{name}: {note}", stacklevel=3)
    return Result(
        analysis=name,
        frame=site_frame(source, metrics),
        headline={**metrics, **info, "warnings": notes},
        params=asdict(params),
        provenance=source.provenance,
    )


def _neighbour_input(source: Source, params: Any) -> tuple[np.ndarray, dict[str, Any]]:
    x, n_input = sample_rows(source, params.max_samples, params.seed)
    notes = check_rows(x)
    x, n_dup = _distinct(x, params.duplicates)
    if n_dup:
        notes.append(f"dropped {n_dup} duplicate rows (zero distances)")
    info = {"n_samples": len(x), "n_input_rows": n_input, "n_duplicates": n_dup}
    return x, {**info, "warnings": notes}


def run_twonn(source: Source, params: TwoNNParams) -> Result:
    """TwoNN on a store site or an array (n, D); headline `dimension` (+ bootstrap spread)."""
    x, info = _neighbour_input(source, params)
    est = TwoNN(params.discard_fraction, params.method).fit(x, duplicates="error")
    metrics = {"dimension": est.dimension_}
    metrics.update(
        _bootstrap(
            est.mu_,
            lambda mu: twonn_from_mu(mu, params.discard_fraction, params.method),
            params.n_bootstrap,
            params.seed,
        )
    )
    info["warnings"] += sample_warnings(len(x), x.shape[1], est.dimension_)
    return _result("twonn", source, params, metrics, info)


def run_mle(source: Source, params: MLEParams) -> Result:
    """Levina-Bickel MLE on a store site or an array (n, D); headline `dimension`."""
    x, info = _neighbour_input(source, params)
    est = MLE(params.n_neighbors, params.comb, params.unbiased).fit(x, duplicates="error")
    metrics = {"dimension": est.dimension_}
    metrics.update(
        _bootstrap(est.local_, lambda m: combine(m, params.comb), params.n_bootstrap, params.seed)
    )
    info["warnings"] += sample_warnings(len(x), x.shape[1], est.dimension_)
    return _result("mle", source, params, metrics, info)


def run_pca(source: Source, params: PCAParams) -> Result:
    """PCA dimensions on a store site (streamed) or an array; headline `participation_ratio`,
    `n_components_90/95/99`, `n_components_fo`."""
    if params.max_samples > 0:
        x, n_input = sample_rows(source, params.max_samples, params.seed)
        cov, n = covariance([x])
    else:
        cov, n = covariance(source.iter_rows())
        n_input = n
    zero = int((np.diag(cov) == 0).sum())
    notes = [f"{zero} of {len(cov)} columns are constant (zero variance)"] if zero else []
    metrics: dict[str, float] = dict(pca_summary(np.linalg.eigvalsh(cov)))
    if params.n_bootstrap > 0:
        rows, _ = sample_rows(source, params.max_samples or 5000, params.seed)
        metrics.update(
            _bootstrap(
                rows,
                lambda r: pca_summary(np.linalg.eigvalsh(covariance([r])[0]))[
                    "participation_ratio"
                ],
                params.n_bootstrap,
                params.seed,
            )
        )
    ambient = cov.shape[0]
    if n <= ambient:
        notes.append(
            f"{n} samples for ambient dimension {ambient}: the covariance has rank <= {n - 1}, "
            "so component counts are capped by the sample size"
        )
    info = {"n_samples": n, "n_input_rows": n_input, "warnings": notes}
    return _result("pca-dim", source, params, metrics, info)


ANALYSES = [
    Analysis(
        name="twonn",
        params=TwoNNParams,
        run=run_twonn,
        inputs=("acts",),
        summary="intrinsic dimension, TwoNN (Facco et al. 2017), with bootstrap spread",
    ),
    Analysis(
        name="mle",
        params=MLEParams,
        run=run_mle,
        inputs=("acts",),
        summary="intrinsic dimension, Levina-Bickel MLE (harmonic-mean or mean combination)",
    ),
    Analysis(
        name="pca-dim",
        params=PCAParams,
        run=run_pca,
        inputs=("acts",),
        summary="PCA dimension: participation ratio, #components for 90/95/99% variance",
    ),
]
