"""Streaming forms for stores larger than memory: row batches of several layers read together,
and the R factor of their stacked activations accumulated batch by batch (TSQR).

`StackedR` keeps R of `[1, X_1 - c_1, ..., X_L - c_L]` (n rows, D = 1 + sum d_l columns, c_l the
first batch's column means), updated by `R <- qr([R; batch]).R`. `R^T R` is the accumulated
cross-product matrix of the layers, held in factored form so no precision is lost squaring
(Demmel et al. 2012, communication-avoiding/tall-skinny QR). Because the first column is the
constant one, dropping R's first row projects the mean out: the centred layer X_l,c equals
`Q R[1:, block_l]` with Q orthonormal, so every inner product between centred layers (and so
every CCA, SVCCA, PWCCA, Procrustes and linear-CKA value) is computed exactly from the
(D - 1, d_l) blocks `R[1:, block_l]`. Memory O(D^2), time O(n D^2).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from workbench.errors import InputError


class StackedR:
    """Accumulated R factor of several layers' rows (see the module docstring)."""

    def __init__(self) -> None:
        self.r: np.ndarray | None = None
        self.shift: list[np.ndarray] = []
        self.widths: list[int] = []
        self.n_rows = 0

    def update(self, blocks: Sequence[np.ndarray]) -> StackedR:
        """Add one batch: a (b, d_l) array per layer, the same b rows of each."""
        blocks = [np.asarray(x, dtype=np.float64) for x in blocks]
        rows = {len(x) for x in blocks}
        if len(rows) != 1:
            raise InputError(f"a batch's layers have different row counts {sorted(rows)}")
        for x in blocks:
            if not np.isfinite(x).all():
                raise InputError(
                    f"a streamed batch (rows {self.n_rows}..{self.n_rows + len(x)}) holds "
                    "NaN/Inf values; similarity needs finite activations"
                )
        if not self.shift:
            self.shift = [x.mean(axis=0) for x in blocks]
            self.widths = [x.shape[1] for x in blocks]
        stacked = np.hstack(
            [np.ones((len(blocks[0]), 1))]
            + [x - c for x, c in zip(blocks, self.shift, strict=True)]
        )
        if self.r is not None:
            stacked = np.vstack([self.r, stacked])
        self.r = np.asarray(np.linalg.qr(stacked, mode="r"))
        self.n_rows += len(blocks[0])
        return self

    def centred_blocks(self) -> list[np.ndarray]:
        """Per layer, the (min(n, D) - 1, d_l) compressed centred activations R[1:, block_l]."""
        if self.r is None:
            raise InputError("no rows were streamed")
        edges = np.cumsum([1, *self.widths])
        return [self.r[1:, a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


def row_batches(readers: Sequence[Any], n_rows: int, batch_size: int) -> Iterator[list[np.ndarray]]:
    """Consecutive row batches of several layers at once.

    `readers` are (store, site) pairs or in-memory arrays, all with `n_rows` rows.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, n_rows, batch_size):
        rows = slice(start, min(n_rows, start + batch_size))
        yield [
            r[rows] if isinstance(r, np.ndarray) else _as_2d(r[0].read(r[1], rows)) for r in readers
        ]


def _as_2d(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


def shuffled_batches(
    readers: Sequence[Any], n_rows: int, batch_size: int, seed: int
) -> Iterator[list[np.ndarray]]:
    """Row batches in one seeded random order shared by every layer (for minibatch CKA, whose
    HSIC estimates assume exchangeable rows: consecutive tokens of one text are not)."""
    perm = np.random.default_rng(seed).permutation(n_rows)
    for start in range(0, n_rows, batch_size):
        rows = np.sort(perm[start : start + batch_size])
        yield [
            r[rows] if isinstance(r, np.ndarray) else _as_2d(r[0].read(r[1], rows)) for r in readers
        ]
