"""Representation geometry per site: anisotropy, effective rank, and MLP activation sparsity.

- **Anisotropy** (Ethayarajh, EMNLP 2019, sec. 3.3): the mean cosine similarity between random
  pairs of representations, E_{i != j} cos(x_i, x_j): near 0 for isotropic data, near 1 when
  every row points the same way. `n_pairs` distinct pairs (i != j) are drawn with `seed`; the
  exact mean over **all** ordered pairs i != j is reported beside it, from the identity
  sum_{i != j} u_i.u_j = ||sum_i u_i||^2 - n with u_i = x_i / ||x_i|| (O(n D), streamed).
  Rows of norm 0 have no direction: they are left out and counted.
- **Effective rank** (Roy & Vetterli, EUSIPCO 2007, eq. 1-2): with singular values sigma_k of
  the (n, D) matrix and p_k = sigma_k / sum_k sigma_k, erank = exp(-sum_k p_k log p_k), between
  1 (rank one) and min(n, D) (all singular values equal). Convention: the **uncentred** matrix,
  as in the paper and in RankMe (Garrido et al. 2023); `center=True` removes the mean first.
  Singular values come from the eigenvalues of the Gram matrix X^T X (D, D), accumulated over
  the rows in float64; eigenvalues below D eps lambda_max count as 0 (numerical rank).
- **Sparsity** of units (Voita, Ferrando & Nalmpantis 2024 count dead and always-on neurons):
  a unit is active on a row when a > `threshold` (`rule="positive"`, the default: for ReLU this
  is "nonzero"; for GELU it is the sign of the pre-activation) or |a| > `threshold`
  (`rule="nonzero"`). Per unit: the fraction of rows on which it is active. Dead units are never
  active; always-on units are active on every row. Exact over every row (streamed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from analyses.geometry.neighbours import check_rows, site_frame
from workbench.analysis.registry import Analysis
from workbench.analysis.results import Result
from workbench.analysis.sources import Source
from workbench.errors import InputError


def _rows(source: Source) -> Any:
    """The source's rows as checked float64 batches."""
    for batch in source.iter_rows():
        batch = np.asarray(batch, dtype=np.float64)
        check_rows(batch)
        yield batch


# -- anisotropy -----------------------------------------------------------------------------


def mean_cosine_all_pairs(x: np.ndarray) -> float:
    """Exact mean of cos(x_i, x_j) over all ordered pairs i != j of the rows of x (n, D)
    (rows of norm 0 must have been removed)."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = u.sum(axis=0)
    n = len(u)
    return float((s @ s - n) / (n * (n - 1)))


def mean_cosine_random_pairs(x: np.ndarray, n_pairs: int, seed: int) -> float:
    """Mean cos(x_i, x_j) over `n_pairs` uniformly drawn pairs with i != j (seeded)."""
    n = len(x)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n  # uniform over j != i
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    return float(np.einsum("ij,ij->i", u[i], u[j]).mean())


@dataclass(frozen=True)
class AnisotropyParams:
    """`n_pairs` random pairs drawn with `seed`."""

    n_pairs: int = 20000
    seed: int = 0


def run_anisotropy(source: Source, params: AnisotropyParams) -> Result:
    """Anisotropy of one site: headline `anisotropy` (random pairs) and
    `anisotropy_all_pairs` (exact), `n_zero_rows` left out."""
    if params.n_pairs < 1:
        raise InputError(f"n_pairs={params.n_pairs} must be >= 1")
    x = source.matrix().astype(np.float64)
    check_rows(x)
    nonzero = np.linalg.norm(x, axis=1) > 0
    n_zero = int((~nonzero).sum())
    x = x[nonzero]
    if len(x) < 2:
        raise InputError(
            f"anisotropy needs at least 2 rows of nonzero norm, got {len(x)} ({n_zero} zero rows)"
        )
    metrics = {
        "anisotropy": mean_cosine_random_pairs(x, params.n_pairs, params.seed),
        "anisotropy_all_pairs": mean_cosine_all_pairs(x),
    }
    headline = {**metrics, "n_samples": len(x), "n_zero_rows": n_zero}
    return Result(
        "anisotropy", site_frame(source, metrics), headline, asdict(params), source.provenance
    )


# -- effective rank ---------------------------------------------------------------------------


def effective_rank_from_singular_values(sigma: np.ndarray) -> float:
    """Roy & Vetterli (2007) effective rank exp(H(p)), p = sigma / sum(sigma); 0 log 0 = 0."""
    s = np.clip(np.asarray(sigma, dtype=np.float64), 0.0, None)
    if s.sum() <= 0:
        raise InputError("the matrix is zero: its effective rank is undefined")
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def singular_values(rows: Any, center: bool) -> tuple[np.ndarray, int]:
    """Singular values (descending) of the matrix stacked from (b, D) batches (optionally
    centred), from the eigenvalues of its Gram matrix, and the row count."""
    n, total, gram = 0, None, None
    for batch in rows:
        total = batch.sum(axis=0) if total is None else total + batch.sum(axis=0)
        gram = batch.T @ batch if gram is None else gram + batch.T @ batch
        n += len(batch)
    if gram is None or total is None:
        raise InputError("no rows: effective rank needs at least one row")
    if center:
        mean = total / n
        gram = gram - n * np.outer(mean, mean)
    eig = np.linalg.eigvalsh(gram)[::-1]
    # eigenvalues of X^T X carry an absolute error ~ D eps lambda_max: below that they are
    # numerically zero (the square root would turn 1e-16 into a spurious 1e-8 singular value)
    eig[eig <= len(eig) * np.finfo(np.float64).eps * max(eig[0], 0.0)] = 0.0
    return np.sqrt(eig[: min(n, len(eig))]), n


@dataclass(frozen=True)
class EffectiveRankParams:
    """`center`: remove the mean first (default False: the matrix as is, Roy & Vetterli)."""

    center: bool = False


def run_effective_rank(source: Source, params: EffectiveRankParams) -> Result:
    """Effective rank of one site: headline `effective_rank` and `effective_rank_ratio`
    (= erank / min(n, D))."""
    sigma, n = singular_values(_rows(source), params.center)
    erank = effective_rank_from_singular_values(sigma)
    metrics = {"effective_rank": erank, "effective_rank_ratio": erank / len(sigma)}
    headline = {**metrics, "n_samples": n, "ambient_dimension": int(len(sigma))}
    return Result(
        "effective-rank", site_frame(source, metrics), headline, asdict(params), source.provenance
    )


# -- sparsity -------------------------------------------------------------------------------


def active_counts(rows: Any, threshold: float, rule: str) -> tuple[np.ndarray, int]:
    """Per-unit count of rows on which the unit is active (see the module docstring), and the
    row count."""
    if rule not in ("positive", "nonzero"):
        raise InputError(f"rule={rule!r} is not valid; valid: positive, nonzero")
    if threshold < 0:
        raise InputError(f"threshold={threshold} must be >= 0")
    counts, n = None, 0
    for batch in rows:
        active = (batch > threshold) if rule == "positive" else (np.abs(batch) > threshold)
        part = active.sum(axis=0)
        counts = part if counts is None else counts + part
        n += len(batch)
    if counts is None:
        raise InputError("no rows: sparsity needs at least one row")
    return counts, n


@dataclass(frozen=True)
class SparsityParams:
    """Active means a > threshold (`rule="positive"`) or |a| > threshold (`"nonzero"`)."""

    threshold: float = 0.0
    rule: str = "positive"


def run_sparsity(source: Source, params: SparsityParams) -> Result:
    """Activation sparsity of the units of one site (e.g. `blocks.N.mlp.hook_post`, or a ReLU
    module's output). Headline: `fraction_active` (over all unit-rows), `dead_fraction`,
    `always_on_fraction`, counts, and the dead units' indices. The frame adds one
    `unit_fraction_active` row per unit (column `unit`)."""
    counts, n = active_counts(_rows(source), params.threshold, params.rule)
    frac = counts / n
    dead, always = np.flatnonzero(counts == 0), np.flatnonzero(counts == n)
    metrics = {
        "fraction_active": float(frac.mean()),
        "dead_fraction": len(dead) / len(counts),
        "always_on_fraction": len(always) / len(counts),
        "n_dead": float(len(dead)),
        "n_always_on": float(len(always)),
    }
    frame = site_frame(source, metrics)
    units = pd.DataFrame(
        {"unit": np.arange(len(frac)), "metric": "unit_fraction_active", "value": frac}
    ).assign(site=frame["site"].iloc[0], checkpoint_step=frame["checkpoint_step"].iloc[0])
    headline = {
        **metrics,
        "n_units": int(len(counts)),
        "n_samples": n,
        "dead_units": dead[:100].tolist(),
    }
    return Result(
        "sparsity",
        pd.concat([frame, units], ignore_index=True),
        headline,
        asdict(params),
        source.provenance,
    )


ANALYSES = [
    Analysis(
        name="anisotropy",
        params=AnisotropyParams,
        run=run_anisotropy,
        inputs=("acts",),
        summary="mean cosine similarity between random pairs of rows (Ethayarajh 2019)",
    ),
    Analysis(
        name="effective-rank",
        params=EffectiveRankParams,
        run=run_effective_rank,
        inputs=("acts",),
        summary="effective rank: exp entropy of normalised singular values (Roy & Vetterli 2007)",
    ),
    Analysis(
        name="sparsity",
        params=SparsityParams,
        run=run_sparsity,
        inputs=("acts",),
        summary="fraction of active units per row; dead and always-on units",
    ),
]
