"""Numerics of CCA, SVCCA, PWCCA and Procrustes from per-layer SVD bases.

Layout: rows are datapoints, columns are neurons, `x` is (n, d) (the transpose of google/svcca's
(neurons, datapoints); METHODS.md 2.1). Every measure here starts from the thin SVD of a centred
layer, `X_c = U S V^T`, kept as a `Basis`:

- CCA (Hotelling 1936): the canonical correlations of X and Y are the singular values of
  `U_x^T U_y` (Björck & Golub 1973), equal to google/svcca `cca_core`'s (covariance, inverse
  square roots, SVD) without forming an inverse square root of an ill-conditioned covariance.
  Dead (constant) and collinear neurons are handled by dropping singular directions with
  `s_i <= rtol * s_max` (the rank), which is what `cca_core`'s `epsilon` ridge aims at.
- SVCCA (Raghu et al. 2017, sec. 2): keep the top-k singular directions of each layer that
  explain a fraction `variance` of it, then CCA. Two readings of "explained" exist
  (METHODS.md 2.1): `"squared"` (default) is the fraction of variance, sum(s_i^2) over the total,
  as the paper's text says; `"singular"` is sum(s_i) over the total, as the google/svcca
  tutorial computes it. Similarity = the mean of all canonical correlations.
- PWCCA (Morcos, Raghu, Bengio 2018, eq. 4): the canonical correlations weighted by how much of
  the layer each canonical variate accounts for, alpha_i = sum_j |<h_i, z_j>| (h_i the i-th
  unit-norm canonical variate of the layer with fewer kept directions, z_j its j-th centred
  neuron), normalised to sum 1. Convention: centred neurons, as in the paper; the reference code
  uses uncentred activations and an unwhitened direction basis (METHODS.md 2.2).
- Orthogonal Procrustes (Ding, Denain, Steinhardt 2021, eq. 2): after centring and scaling each
  layer to unit Frobenius norm, `distance = 2 - 2 ||X^T Y||_*` (the squared Frobenius residual of
  the best rotation, in [0, 2]); the reported similarity is the nuclear norm `||X^T Y||_*` in
  [0, 1].

Plain CCA has a second, faster route for well-conditioned layers (`covariance_correlations`):
whiten each layer with the Cholesky factor of its column-scaled covariance and take the
singular values of the whitened cross-covariance, O(n d^2) in three GEMMs instead of two thin
SVDs of (n, d). Its rounding error grows like u kappa(S) = u kappa(X_c)^2 (the covariance squares
the condition number; u = 2^-53), the SVD route's like u kappa(X_c). It runs only when both
layers pass `COVARIANCE_MAX_CONDITION` (module constants below, with the reason for each threshold);
otherwise the SVD route runs. `Comparison.details["method"]` says which ran.

Linear CKA also follows from two bases: `||X_c^T Y_c||_F^2 = ||S_x U_x^T U_y S_y||_F^2`, so the
layer maps compute every measure from one `U_x^T U_y` product per pair.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from workbench.errors import InputError

DEFAULT_RTOL = 1e-10
READINGS = ("squared", "singular")

# The covariance route runs when the 1-norm condition number of each layer's column-scaled
# covariance (its correlation matrix) S is at most this. The route's error in the correlations
# is first order in u kappa(S) = u kappa(X)^2, the SVD route's in u kappa(X) (u = 2^-53): at
# kappa(S) = 1e8 the worst-case bound is about 2e-8, and on planted pairs with known
# correlations (n = 10k, d = 256) the measured error was 6.6e-12 at kappa_1(S) = 1e8 (SVD
# route 2.3e-13), 8.7e-13 at 1e7; it grows 100x for each 10x in kappa(X) beyond (4.2e-9 at
# 8e10, 3.6e-7 at 7e12), so those layers take the SVD route. Since kappa_2(S) <= kappa_1(S)
# for a symmetric S, kappa_2(X_scaled) <= 1e4 here.
COVARIANCE_MAX_CONDITION = 1e8
# ... and when the largest column variance is at most this many times the smallest. Then
# kappa(X_c) <= kappa(X_scaled) * sqrt(1e10) <= 1e4 * 1e5 = 1e9 < 1 / DEFAULT_RTOL, so the SVD
# route would keep every direction too: both routes compute the same correlations.
COVARIANCE_SCALE_RATIO = 1e10


@dataclass(frozen=True)
class Basis:
    """Thin SVD of one centred layer, truncated to its numerical rank.

    Attributes:
        u: (m, r) orthonormal left singular vectors (m = n rows, or the rows of a compressed
            R factor in the streaming form; inner products between bases are the same).
        s: (r,) singular values, descending (units of the activations times sqrt(rows)).
        vt: (r, d) right singular vectors (neuron-space directions).
        n_rows: number of datapoints the layer was computed from.
        n_dims: number of neurons d.
        n_dead: neurons with zero variance (constant columns).
        row_sq_norms: (n,) squared norms of the centred rows, when known (debiased CKA needs
            them); None in the streaming form.
    """

    u: np.ndarray
    s: np.ndarray
    vt: np.ndarray
    n_rows: int
    n_dims: int
    n_dead: int
    row_sq_norms: np.ndarray | None = None
    mean: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return len(self.s)

    def top(self, variance: float, reading: str = "squared") -> Basis:
        """The SVCCA reduction: the fewest leading directions explaining `variance` of the layer
        (`reading` "squared": sum s_i^2, the variance; "singular": sum s_i, the tutorial's)."""
        k = n_directions(self.s, variance, reading)
        return Basis(
            self.u[:, :k],
            self.s[:k],
            self.vt[:k],
            self.n_rows,
            self.n_dims,
            self.n_dead,
            mean=self.mean,
        )


def n_directions(s: np.ndarray, variance: float, reading: str = "squared") -> int:
    """Smallest k with sum(w[:k]) >= variance * sum(w), w = s^2 ("squared") or s ("singular")."""
    if reading not in READINGS:
        raise InputError(f"variance reading {reading!r} is not one of {', '.join(READINGS)}")
    if not 0.0 < variance <= 1.0:
        raise InputError(f"variance fraction must lie in (0, 1], got {variance}")
    weights = s**2 if reading == "squared" else s
    if len(weights) == 0:
        return 0
    cumulative = np.cumsum(weights) / weights.sum()
    return min(len(s), int(np.searchsorted(cumulative, variance - 1e-12)) + 1)


def check_matrix(x: np.ndarray, name: str) -> np.ndarray:
    """`x` as a finite float64 (n, d) matrix with n >= 2, or an InputError naming the problem."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(f"{name} must be a 2-D (rows, neurons) matrix, got shape {x.shape}")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise InputError(f"{name} needs at least 2 rows and 1 column, got shape {x.shape}")
    x = x.astype(np.float64, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            f"{name} holds {int(bad.sum())} NaN/Inf values (first at row {row}, column {col}); "
            "similarity needs finite activations: drop or impute those rows"
        )
    return x


def check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate two matrices of the same datapoints; returns them as float64 and the warnings.

    Fewer rows than neurons is allowed with a warning (CCA then reaches 1 trivially, and every
    estimator here is biased upwards), which is also returned for the result to carry.
    """
    a, b = check_matrix(a, "acts"), check_matrix(b, "acts_b")
    if a.shape[0] != b.shape[0]:
        raise InputError(
            f"acts has {a.shape[0]} rows but acts_b has {b.shape[0]}: both must hold the same "
            "datapoints (the same tokens or examples, in the same order)"
        )
    notes = rows_warning(a.shape[0], a.shape[1], b.shape[1])
    for x, name in ((a, "acts"), (b, "acts_b")):
        if not np.any(np.ptp(x, axis=0) > 0):
            raise InputError(f"{name} is constant: every column has zero variance")
    return a, b, notes


def rows_warning(n: int, d_a: int, d_b: int) -> list[str]:
    """A warning (issued and returned) when there are fewer rows than neurons."""
    if n >= max(d_a, d_b):
        return []
    note = (
        f"only {n} rows for {d_a} and {d_b} neurons: with fewer datapoints than neurons CCA "
        "correlations approach 1 trivially and all similarity estimators are biased upwards; "
        "use 5-10x more rows than neurons"
    )
    warnings.warn(note, stacklevel=3)
    return [note]


def decompose(
    x: np.ndarray, rtol: float = DEFAULT_RTOL, centre: bool = True, n_rows: int | None = None
) -> Basis:
    """Thin SVD basis of a layer (n, d) after centring its columns.

    `rtol` drops directions with s_i <= rtol * s_max (dead or collinear neurons). With
    `centre=False`, `x` is taken as already centred (or as the compressed R factor of the
    streaming form, with `n_rows` the true number of datapoints).
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0) if centre else None
    xc = x - mean if centre else x
    spread = np.ptp(xc, axis=0) if centre else np.linalg.norm(xc, axis=0)
    n_dead = int(np.sum(spread <= 1e-12 * max(float(np.abs(xc).max()), 1e-300)))
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    keep = s > rtol * s[0] if len(s) and s[0] > 0 else np.zeros(len(s), bool)
    row_sq = np.einsum("ij,ij->i", xc, xc) if centre else None
    return Basis(
        u=u[:, keep],
        s=s[keep],
        vt=vt[keep],
        n_rows=len(x) if n_rows is None else n_rows,
        n_dims=x.shape[1],
        n_dead=n_dead,
        row_sq_norms=row_sq,
        mean=mean,
    )


def correlations(a: Basis, b: Basis) -> np.ndarray:
    """Canonical correlations of two bases, descending, min(r_a, r_b) of them, in [0, 1]."""
    if a.rank == 0 or b.rank == 0:
        return np.zeros(0)
    rho = np.linalg.svd(a.u.T @ b.u, compute_uv=False)
    return np.clip(rho, 0.0, 1.0)


def pwcca(a: Basis, b: Basis) -> tuple[float, np.ndarray, np.ndarray]:
    """(PWCCA similarity, correlations, weights) per Morcos et al. 2018 (module docstring).

    The weights come from the layer with fewer kept directions (`a` on a tie), as the
    reference implementation requires of its first argument.
    """
    first, second = (a, b) if a.rank <= b.rank else (b, a)
    left, rho, _ = np.linalg.svd(first.u.T @ second.u, full_matrices=False)
    rho = np.clip(rho, 0.0, 1.0)
    # <h_i, z_j> with h_i = U left_i and Z_c = U S V^T: (left^T S V^T)_{ij}
    overlap = left.T @ (first.s[:, None] * first.vt)
    alpha = np.abs(overlap).sum(axis=1)[: len(rho)]
    weights = alpha / alpha.sum()
    return float(weights @ rho), rho, weights


def procrustes(a: Basis, b: Basis) -> tuple[float, float]:
    """(similarity ||X^T Y||_*, distance 2 - 2 ||X^T Y||_*) of unit-Frobenius centred layers."""
    na, nb = np.sqrt((a.s**2).sum()), np.sqrt((b.s**2).sum())
    cross = (a.s[:, None] * (a.u.T @ b.u)) * b.s[None, :] / (na * nb)
    nuclear = float(np.linalg.svd(cross, compute_uv=False).sum())
    return nuclear, 2.0 - 2.0 * nuclear


def linear_cka(a: Basis, b: Basis, debiased: bool = False) -> float:
    """Linear CKA from two bases (Kornblith et al. 2019, feature-space form; debiased with the
    U-statistic of Song et al. 2007 as in the CKA demo, which needs the bases' row norms)."""
    cross = (a.s[:, None] * (a.u.T @ b.u)) * b.s[None, :]
    xy = float((cross**2).sum())
    xx, yy = float((a.s**4).sum()), float((b.s**4).sum())
    if debiased:
        if a.row_sq_norms is None or b.row_sq_norms is None:
            raise InputError("debiased CKA needs the rows' norms, which a streamed basis lacks")
        from analyses.similarity.cka import debias

        n = a.n_rows
        xy = debias(xy, a.row_sq_norms, b.row_sq_norms, n)
        xx = debias(xx, a.row_sq_norms, a.row_sq_norms, n)
        yy = debias(yy, b.row_sq_norms, b.row_sq_norms, n)
        return xy / np.sqrt(max(xx, 0.0) * max(yy, 0.0))
    return xy / np.sqrt(xx * yy)


def covariance_correlations(
    a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray | None, list[float | None]]:
    """Canonical correlations of (n, d_a) and (n, d_b) by the covariance route, or None when
    either layer is not well conditioned for it (then use the SVD route, `decompose` +
    `correlations`); also the 1-norm condition numbers of the layers' column-scaled
    covariances (None for a layer not factored).

    Route, per layer: centre; S = X_c^T X_c; scale to unit diagonal, S_s = D^-1/2 S D^-1/2
    (CCA is invariant to column scaling, and Cholesky's accuracy depends on the scaled
    condition, van der Sluis 1969); Cholesky S_s = L L^T; W = L^-1 (d^3, once per layer);
    kappa_1(S_s) = ||S_s||_1 ||W^T W||_1, exact. Then the correlations are the singular values of
    W_a (D_a^-1/2 X_a^T X_b D_b^-1/2) W_b^T, descending, min(d_a, d_b) of them. numpy's BLAS
    only (one thread pool with the GEMMs; O(n d^2) for the three products, O(d^3) for the rest).

    Declines (returns None) when: n - 1 < max(d_a, d_b) (a singular covariance); a column is
    dead (the same test as `decompose`); column variances differ by more than
    `COVARIANCE_SCALE_RATIO`; Cholesky fails; or kappa_1(S_s) exceeds `COVARIANCE_MAX_CONDITION`
    (module constants: why these thresholds).
    """
    conditions: list[float | None] = [None, None]
    if len(a) - 1 < max(a.shape[1], b.shape[1]):
        return None, conditions
    centred, scales, whiteners = [], [], []
    for i, x in enumerate((a, b)):
        xc = x - x.mean(axis=0)
        spread = np.ptp(xc, axis=0)
        if np.any(spread <= 1e-12 * max(float(np.abs(xc).max()), 1e-300)):
            return None, conditions
        cov = xc.T @ xc
        var = np.diag(cov).copy()
        if not var.min() > 0 or var.max() > COVARIANCE_SCALE_RATIO * var.min():
            return None, conditions
        scale = 1.0 / np.sqrt(var)
        cov *= scale[:, None]
        cov *= scale[None, :]
        try:
            whitener = np.linalg.inv(np.linalg.cholesky(cov))
        except np.linalg.LinAlgError:
            return None, conditions
        inverse = whitener.T @ whitener
        condition = float(np.abs(cov).sum(axis=0).max() * np.abs(inverse).sum(axis=0).max())
        conditions[i] = condition if np.isfinite(condition) else None
        if not condition <= COVARIANCE_MAX_CONDITION:
            return None, conditions
        centred.append(xc)
        scales.append(scale)
        whiteners.append(whitener)
    cross = (scales[0][:, None] * (centred[0].T @ centred[1])) * scales[1][None, :]
    rho = np.linalg.svd(whiteners[0] @ cross @ whiteners[1].T, compute_uv=False)
    return np.clip(rho, 0.0, 1.0), conditions
