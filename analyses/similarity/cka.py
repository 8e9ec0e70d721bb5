"""Centred kernel alignment (Kornblith, Norouzi, Lee, Hinton, ICML 2019), written from the paper
and the conventions of its demo notebook (METHODS.md 2.3). Layout (n examples, p features).

- `CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))` with `HSIC(K, L) = <HKH, HLH>` (H the
  centring matrix; the 1/(n-1)^2 factors cancel in the ratio).
- Linear kernel, biased: `||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)` (feature form,
  O(n p^2); the Gram form is O(n^2 p)).
- Debiased: HSIC replaced by the unbiased estimator of Song et al. 2007 (equivalently the
  Székely-Rizzo U-centred Gram matrices), so that independent representations give CKA near 0.
- RBF kernel: `k(x, y) = exp(-||x - y||^2 / (2 sigma^2))` with bandwidth
  `sigma = threshold * sqrt(median of the squared pairwise distances)` (the median taken over the
  full n x n matrix, zero diagonal included), the demo's convention; default threshold 0.5.
- Minibatch CKA (Nguyen, Raghu, Kornblith 2021): HSIC_1 (the unbiased estimator) averaged over
  minibatches, then the ratio of the averages; any kernel, memory O(batch^2).
- Streaming linear CKA (`LinearMoments`): the exact biased and debiased linear CKA of all rows
  from sums accumulated batch by batch (cross-products, row norms), memory O(p_x p_y).
"""

from __future__ import annotations

import numpy as np

from workbench.errors import InputError

KERNELS = ("linear", "rbf")


def gram_linear(x: np.ndarray) -> np.ndarray:
    """(n, n) linear Gram matrix x x^T."""
    return x @ x.T


def gram_rbf(x: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(n, n) RBF Gram matrix with sigma = threshold * sqrt(median squared distance)."""
    if threshold <= 0:
        raise InputError(f"RBF bandwidth threshold must be positive, got {threshold}")
    dots = x @ x.T
    sq = np.diag(dots)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * dots, 0.0)
    median = float(np.median(dist))
    if median <= 0:
        raise InputError("RBF kernel: the median squared distance is 0 (mostly identical rows)")
    return np.exp(-dist / (2 * threshold**2 * median))


def center_gram(gram: np.ndarray, unbiased: bool = False) -> np.ndarray:
    """Double-centred Gram matrix; `unbiased` gives the U-centred one (zero diagonal)."""
    gram = np.array(gram, dtype=np.float64)
    n = len(gram)
    if unbiased:
        if n < 4:
            raise InputError(f"debiased CKA needs at least 4 rows, got {n}")
        np.fill_diagonal(gram, 0.0)
        means = gram.sum(axis=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        gram -= means[:, None] + means[None, :]
        np.fill_diagonal(gram, 0.0)
    else:
        means = gram.mean(axis=0)
        means -= means.mean() / 2
        gram -= means[:, None] + means[None, :]
    return gram


def cka_gram(gram_x: np.ndarray, gram_y: np.ndarray, debiased: bool = False) -> float:
    """CKA of two (n, n) Gram matrices."""
    kx, ky = center_gram(gram_x, debiased), center_gram(gram_y, debiased)
    return float(kx.ravel() @ ky.ravel() / (np.linalg.norm(kx) * np.linalg.norm(ky)))


def debias(dot: float, sq_rows_x: np.ndarray, sq_rows_y: np.ndarray, n: int) -> float:
    """n(n-3) times the unbiased HSIC of linear kernels of centred data, from the biased
    `||X_c^T Y_c||_F^2` and the centred rows' squared norms (Song et al. 2007, eq. 5)."""
    return float(
        dot
        - n / (n - 2.0) * float(sq_rows_x @ sq_rows_y)
        + sq_rows_x.sum() * sq_rows_y.sum() / ((n - 1.0) * (n - 2.0))
    )


def feature_linear_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA in feature space (columns centred here)."""
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    xy = float(np.linalg.norm(x.T @ y) ** 2)
    xx = float(np.linalg.norm(x.T @ x) ** 2)
    yy = float(np.linalg.norm(y.T @ y) ** 2)
    if debiased:
        n = len(x)
        if n < 4:
            raise InputError(f"debiased CKA needs at least 4 rows, got {n}")
        rx, ry = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        xy, xx, yy = debias(xy, rx, ry, n), debias(xx, rx, rx, n), debias(yy, ry, ry, n)
    return xy / np.sqrt(max(xx, 0.0) * max(yy, 0.0))


def hsic1(kx: np.ndarray, ky: np.ndarray) -> float:
    """Unbiased HSIC_1 (Song et al. 2007) of two (n, n) kernel matrices, n >= 4."""
    n = len(kx)
    kx, ky = kx.copy(), ky.copy()
    np.fill_diagonal(kx, 0.0)
    np.fill_diagonal(ky, 0.0)
    ones_x, ones_y = kx.sum(axis=0), ky.sum(axis=0)
    trace = float(kx.ravel() @ ky.ravel())
    middle = ones_x.sum() * ones_y.sum() / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * float(ones_x @ ones_y)
    return (trace + middle - last) / (n * (n - 3))


class MinibatchCKA:
    """Minibatch CKA (Nguyen, Raghu, Kornblith 2021): mean HSIC_1 over minibatches, then
    CKA = mean HSIC_1(K, L) / sqrt(mean HSIC_1(K, K) mean HSIC_1(L, L)).

    `update(x, y)` takes one minibatch (b, p_x), (b, p_y) with b >= 4. An unbiased estimator
    of the debiased CKA's population value; it agrees with the full-data debiased CKA up to
    sampling noise, not exactly. The RBF bandwidth is set per minibatch (the demo's rule).
    """

    def __init__(self, kernel: str = "linear", threshold: float = 0.5) -> None:
        if kernel not in KERNELS:
            raise InputError(f"kernel {kernel!r} is not one of {', '.join(KERNELS)}")
        self.kernel = kernel
        self.threshold = threshold
        self.sums = np.zeros(3)
        self.n_batches = 0

    def _gram(self, x: np.ndarray) -> np.ndarray:
        return gram_linear(x) if self.kernel == "linear" else gram_rbf(x, self.threshold)

    def update(self, x: np.ndarray, y: np.ndarray) -> MinibatchCKA:
        if len(x) < 4:
            return self  # too small for HSIC_1 (a trailing remainder): skipped
        kx = self._gram(np.asarray(x, np.float64))
        ky = self._gram(np.asarray(y, np.float64))
        self.sums += (hsic1(kx, ky), hsic1(kx, kx), hsic1(ky, ky))
        self.n_batches += 1
        return self

    @property
    def cka_(self) -> float:
        xy, xx, yy = self.sums / max(self.n_batches, 1)
        return float(xy / np.sqrt(max(xx, 0.0) * max(yy, 0.0)))


class LinearMoments:
    """Exact streaming linear CKA (biased and debiased) of two representations.

    Accumulates, over batches of rows, the sums that the feature-form formulas need once the
    centring is expanded: X^T Y, X^T X, Y^T Y, the column sums, and the row-norm terms of the
    debiased estimator. Rows are shifted by the first batch's column means before summing so
    that large common offsets (residual streams) do not cancel catastrophically. Memory
    O((p_x + p_y)^2); the result equals `feature_linear_cka` on the stacked rows.
    """

    def __init__(self) -> None:
        self.n = 0
        self.shift: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, x: np.ndarray, y: np.ndarray) -> LinearMoments:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if self.shift is None:
            self.shift = (x.mean(axis=0), y.mean(axis=0))
            px, py = x.shape[1], y.shape[1]
            self.sx, self.sy = np.zeros(px), np.zeros(py)
            self.xx, self.yy, self.xy = np.zeros((px, px)), np.zeros((py, py)), np.zeros((px, py))
            # row-norm terms: sum a_i, sum b_i, sum a_i^2, sum b_i^2, sum a_i b_i
            self.scalars = np.zeros(5)
            # sum x_i a_i, sum x_i b_i, sum y_i a_i, sum y_i b_i
            self.xa, self.xb = np.zeros(px), np.zeros(px)
            self.ya, self.yb = np.zeros(py), np.zeros(py)
        x, y = x - self.shift[0], y - self.shift[1]
        a, b = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        self.n += len(x)
        self.sx += x.sum(axis=0)
        self.sy += y.sum(axis=0)
        self.xx += x.T @ x
        self.yy += y.T @ y
        self.xy += x.T @ y
        self.scalars += (a.sum(), b.sum(), a @ a, b @ b, a @ b)
        self.xa += a @ x
        self.xb += b @ x
        self.ya += a @ y
        self.yb += b @ y
        return self

    def _centred_sq_rows_dot(self, which: str) -> float:
        """sum_i |x_i - mx|^2 |y_i - my|^2 (which = "xy"), or the "xx" / "yy" forms."""
        n, mx, my = self.n, self.sx / self.n, self.sy / self.n
        sa, sb, saa, sbb, sab = self.scalars
        if which == "xx":
            return _sq_dot(saa, self.xa, self.xa, sa, sa, self.xx, self.sx, self.sx, mx, mx, n)
        if which == "yy":
            return _sq_dot(sbb, self.yb, self.yb, sb, sb, self.yy, self.sy, self.sy, my, my, n)
        return _sq_dot(sab, self.xb, self.ya, sa, sb, self.xy, self.sx, self.sy, mx, my, n)

    def cka(self, debiased: bool = False) -> float:
        if self.n < 4:
            raise InputError(f"CKA needs at least 4 rows, got {self.n}")
        n, mx, my = self.n, self.sx / self.n, self.sy / self.n
        cxy = self.xy - n * np.outer(mx, my)
        cxx = self.xx - n * np.outer(mx, mx)
        cyy = self.yy - n * np.outer(my, my)
        xy, xx, yy = (float((c**2).sum()) for c in (cxy, cxx, cyy))
        if debiased:
            sa = self.scalars[0] - n * float(mx @ mx)  # sum of centred squared row norms
            sb = self.scalars[1] - n * float(my @ my)
            ab = self._centred_sq_rows_dot("xy")
            aa = self._centred_sq_rows_dot("xx")
            bb = self._centred_sq_rows_dot("yy")
            xy = xy - n / (n - 2.0) * ab + sa * sb / ((n - 1.0) * (n - 2.0))
            xx = xx - n / (n - 2.0) * aa + sa * sa / ((n - 1.0) * (n - 2.0))
            yy = yy - n / (n - 2.0) * bb + sb * sb / ((n - 1.0) * (n - 2.0))
        return xy / np.sqrt(max(xx, 0.0) * max(yy, 0.0))


def _sq_dot(
    s_ab: float,
    x_b: np.ndarray,
    y_a: np.ndarray,
    s_a: float,
    s_b: float,
    xy: np.ndarray,
    sx: np.ndarray,
    sy: np.ndarray,
    mx: np.ndarray,
    my: np.ndarray,
    n: int,
) -> float:
    """sum_i a'_i b'_i where a'_i = |x_i - mx|^2, b'_i = |y_i - my|^2, expanded into sums:
    a'_i = a_i - 2 x_i.mx + |mx|^2 (likewise b'), with s_ab = sum a_i b_i, x_b = sum x_i b_i,
    y_a = sum y_i a_i, xy = sum x_i y_i^T, sx = sum x_i, sy = sum y_i."""
    cx, cy = float(mx @ mx), float(my @ my)
    return float(
        s_ab
        - 2 * my @ y_a
        + cy * s_a
        - 2 * mx @ x_b
        + 4 * mx @ xy @ my
        - 2 * cy * (mx @ sx)
        + cx * s_b
        - 2 * cx * (my @ sy)
        + n * cx * cy
    )
