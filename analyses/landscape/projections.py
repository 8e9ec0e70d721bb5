"""Random projections P: R^d -> R^D for training in a subspace, theta = theta_0 + P theta_d
(Li, Farkhoor, Liu & Yosinski, ICLR 2018, section 2; METHODS.md section 1.4).

Every projection is a `torch.nn.Module` (its random draws are buffers, so `.to(device)` moves
them) used as `P @ theta_d`: a (d,) tensor in, a (D,) tensor out, differentiable in theta_d
through autograd. All three have (approximately, for Fastfood in expectation) unit-norm
columns, so a unit step in theta_d moves theta by a unit distance, whatever D is:

- `DenseProjection`: i.i.d. N(0, 1) entries, each column divided by its L2 norm over the whole
  D (as uber-research/intrinsic-dimension `train.py` normalises every basis vector across all
  layers). Memory and time O(dD).
- `SparseProjection`: the very sparse random projection of Li, Hastie & Church (KDD 2006) with
  density s = 1/sqrt(D) (scikit-learn's `SparseRandomProjection` default): each entry is
  nonzero with probability s, with a random sign; each column is then normalised to unit norm
  (the reference code's global "normalizer"). Memory and time O(d sqrt(D)).
- `FastfoodProjection`: P theta_d = (H G Pi H B pad(theta_d))[:D] / (divisor sqrt(D / L)), with
  L = 2^ceil(log2 D), B in {+-1}^L, Pi a random permutation, G ~ N(0, 1)^L,
  divisor = sqrt(L sum G^2) and H the un-normalised Walsh-Hadamard transform (Le, Sarlos &
  Smola, ICML 2013; the reference `tf_fastfood_transform`). The expected squared column norm
  is 1. Memory O(L) = O(D) (an in-place transform over one length-L buffer, no D x d matrix);
  time O(L log L), independent of d.
- `IdentityProjection` (d = D only): P = I, so subspace training is direct training; a check.

Draws are deterministic by `seed`: they are made on the CPU with `torch.Generator(seed)` (in
float64, then cast), so the same seed gives the same P on every device and in every dtype.
The order of draws is part of the definition: dense draws one column after another (so its
first columns do not depend on d); sparse draws the gaps between nonzeros, then the signs;
Fastfood draws B, then Pi, then G.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor, nn

from workbench.errors import InputError


def check_dims(d: int, D: int) -> None:
    """d and D must be positive ints with d <= D (more directions than parameters spans
    nothing new and is not the paper's setting)."""
    for name, value in (("d", d), ("D", D)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{name} must be a positive int, got {value!r}")
    if d > D:
        raise InputError(
            f"subspace dimension d={d} exceeds the parameter count D={D}; use d <= {D}"
        )


class Projection(nn.Module):
    """P: R^d -> R^D. `P @ theta_d` (or `P(theta_d)`) maps a (d,) tensor to a (D,) tensor."""

    kind = ""

    def __init__(self, d: int, D: int, seed: int) -> None:
        super().__init__()
        check_dims(d, D)
        self.d, self.D, self.seed = d, D, int(seed)

    def __matmul__(self, theta_d: Tensor) -> Tensor:
        return self(theta_d)

    def _check_input(self, theta_d: Tensor) -> None:
        if theta_d.shape != (self.d,):
            raise InputError(
                f"{self.kind} projection takes a ({self.d},) tensor, got {tuple(theta_d.shape)}"
            )

    def matrix(self) -> Tensor:
        """P as a dense (D, d) tensor (O(dD) memory: for tests and small sizes)."""
        dtype = self._dtype()
        eye = torch.eye(self.d, dtype=dtype, device=self._device())
        with torch.no_grad():
            return torch.stack([self(eye[j]) for j in range(self.d)], dim=1)

    def column_norms(self) -> Tensor:
        """||P e_j||_2 for j = 1..d, shape (d,)."""
        return self.matrix().norm(dim=0)

    def nbytes(self) -> int:
        """Bytes held by the projection's buffers (its memory beyond theta_d)."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def _dtype(self) -> torch.dtype:
        return next(self.buffers()).dtype

    def _device(self) -> torch.device:
        return next(self.buffers()).device

    def extra_repr(self) -> str:
        return f"d={self.d}, D={self.D}, seed={self.seed}"


class DenseProjection(Projection):
    """Dense Gaussian P with unit-norm columns over the whole D. Stored transposed, (d, D)."""

    kind = "dense"
    rows: Tensor

    def __init__(
        self, d: int, D: int, seed: int = 0, dtype: torch.dtype = torch.float32, device=None
    ) -> None:
        super().__init__(d, D, seed)
        generator = torch.Generator().manual_seed(self.seed)
        rows = torch.empty(d, D, dtype=dtype)
        for j in range(d):  # one column per draw: O(D) scratch, and column j ignores d
            column = torch.randn(D, generator=generator, dtype=torch.float64)
            rows[j] = column / column.norm()
        self.register_buffer("rows", rows.to(device) if device is not None else rows)

    def forward(self, theta_d: Tensor) -> Tensor:
        self._check_input(theta_d)
        return theta_d @ self.rows

    def matrix(self) -> Tensor:
        return self.rows.T.clone()


class SparseProjection(Projection):
    """Very sparse random projection (Li, Hastie & Church 2006), density 1/sqrt(D), unit-norm
    columns. Stored as (row, column, value) triplets; applied with `index_add`.

    A column that draws no nonzero (probability (1 - 1/sqrt(D))^D ~ exp(-sqrt(D)), below 1e-13
    for D >= 1000) stays zero."""

    kind = "sparse"
    row_index: Tensor
    col_index: Tensor
    values: Tensor

    def __init__(
        self, d: int, D: int, seed: int = 0, dtype: torch.dtype = torch.float32, device=None
    ) -> None:
        super().__init__(d, D, seed)
        density = 1.0 / math.sqrt(D)
        generator = torch.Generator().manual_seed(self.seed)
        flat = _bernoulli_positions(d * D, density, generator)  # column-major: j * D + i
        cols, rows = flat // D, flat % D
        signs = _random_signs(len(flat), generator)
        counts = torch.bincount(cols, minlength=d).to(torch.float64)
        values = (signs / counts[cols].sqrt()).to(dtype)
        for name, tensor in (("row_index", rows), ("col_index", cols), ("values", values)):
            self.register_buffer(name, tensor.to(device) if device is not None else tensor)

    def forward(self, theta_d: Tensor) -> Tensor:
        self._check_input(theta_d)
        out = theta_d.new_zeros(self.D)
        return out.index_add(0, self.row_index, self.values * theta_d[self.col_index])

    def _dtype(self) -> torch.dtype:
        return self.values.dtype


def _random_signs(n: int, generator: torch.Generator) -> Tensor:
    """n independent +-1 values (float64), each sign with probability 1/2."""
    return torch.randint(0, 2, (n,), generator=generator, dtype=torch.float64) * 2 - 1


def _bernoulli_positions(total: int, density: float, generator: torch.Generator) -> Tensor:
    """Sorted positions in [0, total) of a Bernoulli(density) process, drawn as geometric gaps
    (O(number of hits) memory instead of O(total))."""
    hits: list[Tensor] = []
    last = -1
    while True:
        remaining = total - 1 - last
        n = max(1024, int(remaining * density * 1.05 + 6 * math.sqrt(remaining * density + 1)))
        gaps = torch.empty(n, dtype=torch.float64).geometric_(density, generator=generator)
        positions = last + torch.cumsum(gaps.to(torch.int64), 0)
        inside = positions[positions < total]
        hits.append(inside)
        if len(inside) < n:
            return torch.cat(hits)
        last = int(positions[-1])


class FastfoodProjection(Projection):
    """Fastfood P (Le, Sarlos & Smola 2013) in the form and scaling of Li et al. 2018: O(D)
    memory, O(L log L) time per product, expected column norm 1 (see the module docstring)."""

    kind = "fastfood"
    B: Tensor
    Pi: Tensor
    G: Tensor

    def __init__(
        self, d: int, D: int, seed: int = 0, dtype: torch.dtype = torch.float32, device=None
    ) -> None:
        super().__init__(d, D, seed)
        L = 1 << (D - 1).bit_length()  # 2^ceil(log2 D)
        generator = torch.Generator().manual_seed(self.seed)
        signs = _random_signs(L, generator)
        perm = torch.randperm(L, generator=generator)
        gauss = torch.randn(L, generator=generator, dtype=torch.float64)
        divisor = math.sqrt(L * float((gauss**2).sum()))
        self.L = L
        self.scale = 1.0 / (divisor * math.sqrt(D / L))
        for name, tensor in (("B", signs.to(dtype)), ("Pi", perm), ("G", gauss.to(dtype))):
            self.register_buffer(name, tensor.to(device) if device is not None else tensor)

    def forward(self, theta_d: Tensor) -> Tensor:
        self._check_input(theta_d)
        return _Fastfood.apply(theta_d, self)

    def apply_batch(self, x: Tensor) -> Tensor:
        """P applied to each row of x: (n, d) -> (n, D), without autograd."""
        buf = x.new_zeros(len(x), self.L)
        buf[:, : self.d] = x * self.B[: self.d]
        fwht_(buf)
        buf = buf[:, self.Pi]
        buf *= self.G
        fwht_(buf)
        return buf[:, : self.D] * self.scale

    def apply_transpose_batch(self, y: Tensor) -> Tensor:
        """P^T applied to each row of y: (n, D) -> (n, d), without autograd (the adjoint:
        P^T = pad^T B H Pi^T G H trunc^T, scaled alike; H is symmetric)."""
        buf = y.new_zeros(len(y), self.L)
        buf[:, : self.D] = y * self.scale
        fwht_(buf)
        buf *= self.G
        unpermuted = torch.empty_like(buf)
        unpermuted[:, self.Pi] = buf
        fwht_(unpermuted)
        return unpermuted[:, : self.d] * self.B[: self.d]

    def matrix(self) -> Tensor:
        eye = torch.eye(self.d, dtype=self.G.dtype, device=self.G.device)
        return self.apply_batch(eye).T.contiguous()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, L={self.L}"


class _Fastfood(torch.autograd.Function):
    """theta_d (d,) -> P theta_d (D,), with the adjoint as its backward (no graph is kept: the
    buffers B, Pi, G are all it needs)."""

    @staticmethod
    def forward(ctx, theta_d: Tensor, projection: FastfoodProjection) -> Tensor:  # type: ignore[override]
        ctx.projection = projection
        return projection.apply_batch(theta_d.detach()[None])[0]

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return ctx.projection.apply_transpose_batch(grad[None])[0], None


def fwht_(x: Tensor) -> Tensor:
    """In-place un-normalised fast Walsh-Hadamard transform along the last axis (length L a
    power of two): x <- x H with H_{ij} = (-1)^{popcount(i & j)}, so H H = L I.

    H_L is the Kronecker product of H_2 over the log2 L bits of the index, so the transform
    runs over groups of up to 5 bits at once: a view (..., 2^m, h) multiplied by H_{2^m}
    (32 x 32 at most) and copied back. O(L log L) time, O(L) memory (the caller's buffer and
    one L-sized scratch per group); measured about 2x faster on CPU than one butterfly pass per
    bit, whose low-bit passes walk tiny strided views."""
    L = x.shape[-1]
    if L & (L - 1):
        raise InputError(f"the Walsh-Hadamard transform needs a power-of-two length, got {L}")
    if not x.is_contiguous():
        raise InputError("fwht_ needs a contiguous tensor")
    bits, done, h = L.bit_length() - 1, 0, 1
    while done < bits:
        m = min(FWHT_GROUP_BITS, bits - done)
        hadamard = _hadamard(m, x.dtype, x.device)
        if h == 1:
            view = x.view(-1, 1 << m)
            view.copy_(view @ hadamard)
        else:
            view = x.view(-1, 1 << m, h)
            view.copy_(torch.matmul(hadamard, view))
        done, h = done + m, h << m
    return x


FWHT_GROUP_BITS = 5


@functools.lru_cache(maxsize=64)
def _hadamard(m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The 2^m x 2^m Sylvester Hadamard matrix H_{ij} = (-1)^{popcount(i & j)}."""
    index = torch.arange(1 << m, device=device)
    parity = torch.zeros(1 << m, 1 << m, dtype=torch.int64, device=device)
    for bit in range(m):
        parity += ((index[:, None] >> bit) & (index[None, :] >> bit)) & 1
    return (1 - 2 * (parity % 2)).to(dtype)


class IdentityProjection(Projection):
    """P = I (d = D): subspace training with it is direct training, step for step."""

    kind = "identity"

    def __init__(
        self, d: int, D: int, seed: int = 0, dtype: torch.dtype = torch.float32, device=None
    ) -> None:
        super().__init__(d, D, seed)
        if d != D:
            raise InputError(f"the identity projection needs d == D, got d={d}, D={D}")
        self.register_buffer("_anchor", torch.zeros(0, dtype=dtype, device=device))

    def forward(self, theta_d: Tensor) -> Tensor:
        self._check_input(theta_d)
        return theta_d


PROJECTIONS: dict[str, Any] = {  # name -> class(d, D, seed=, dtype=, device=)
    "dense": DenseProjection,
    "sparse": SparseProjection,
    "fastfood": FastfoodProjection,
    "identity": IdentityProjection,
}


def make_projection(
    kind: str,
    d: int,
    D: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> Projection:
    """The projection `kind` ('dense', 'sparse', 'fastfood', 'identity') from R^d to R^D."""
    if kind not in PROJECTIONS:
        raise InputError(f"unknown projection {kind!r}; valid: {', '.join(PROJECTIONS)}")
    return PROJECTIONS[kind](d, D, seed=seed, dtype=dtype, device=device)


def dense_nbytes(d: int, D: int, dtype: torch.dtype = torch.float32) -> int:
    """Memory a dense (d, D) projection would hold, in bytes (d D x element size)."""
    return d * D * torch.empty((), dtype=dtype).element_size()
