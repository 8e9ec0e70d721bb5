"""Top-k largest |a| over (row, dim) of a stream of (rows, width) blocks.

Order: larger |a| first; ties go to the earlier row, then the lower dim, so results equal a
stable sort of the concatenated data. A chunk is never ranked whole (a top-k of 25M values
takes 400 ms in numpy or torch): ``TopkPool`` keeps only values that can still make the top k.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TOPK_FIELDS = ("value", "row", "dim", "token_id", "example_index", "position")


def empty_topk() -> dict[str, np.ndarray]:
    return {f: np.zeros(0, np.float64 if f == "value" else np.int64) for f in TOPK_FIELDS}


class TopkPool:
    """Candidates for the top-k |a| of one chunk, fed block by block in row order.

    Invariant: at least k values already seen have |a| >= ``bound``; a later value with
    |a| <= bound loses to them (ties go to the earlier row), so it is never kept. The bound
    rises with the k-th largest per-column max |a| and with pruning of the pool.
    """

    def __init__(self, k: int, width: int):
        self.k, self.width = k, width
        self.col_max = np.zeros(width, np.float64)
        self.bound = -np.inf
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.size = 0

    def add(self, block: np.ndarray, row0: int, block_abs_max: np.ndarray) -> None:
        previous = self.bound
        if block_abs_max.max() <= previous:  # common late in a chunk: nothing can enter
            return  # (col_max may lag here, only for entries <= bound, which never matter)
        np.maximum(self.col_max, block_abs_max, out=self.col_max)
        current = previous
        if self.width >= self.k:  # k columns own a value >= the k-th largest column max
            current = max(current, float(np.partition(self.col_max, -self.k)[-self.k]))
        cols = np.flatnonzero((block_abs_max >= current) & (block_abs_max > previous))
        self.bound = current
        if not len(cols):
            return
        sub = block if len(cols) == self.width else block[:, cols]
        a = np.abs(sub)
        rows, c = np.nonzero((a >= current) & (a > previous))  # (row, dim) order
        self.parts.append((sub[rows, c].astype(np.float64), rows + row0, cols[c]))
        self.size += len(rows)
        if self.size > 4 * self.k + 4096:
            self._prune()

    def _prune(self) -> None:
        values, rows, dims = (np.concatenate(p) for p in zip(*self.parts, strict=True))
        if len(values) > self.k:
            a = np.abs(values)
            kth = np.partition(a, len(a) - self.k)[len(a) - self.k]
            ties = a == kth
            keep = (a > kth) | (ties & (np.cumsum(ties) <= self.k - np.count_nonzero(a > kth)))
            values, rows, dims = values[keep], rows[keep], dims[keep]
            self.bound = max(self.bound, float(kth))
        self.parts, self.size = [(values, rows, dims)], len(values)

    def result(self, row_offset: int, meta: dict[str, Any]) -> dict[str, np.ndarray]:
        if not self.parts:
            return empty_topk()
        self._prune()
        values, rows, dims = self.parts[0]
        top = {"value": values, "row": rows.astype(np.int64) + row_offset, "dim": dims}
        for field, given in meta.items():
            top[field] = (
                np.full(len(rows), -1) if given is None else np.asarray(given)[rows]
            ).astype(np.int64)
        return merge_topk(top, None, self.k)


def merge_topk(a: dict, b: dict | None, k: int) -> dict[str, np.ndarray]:
    """The k entries of a ∪ b with the largest |value|; ties: lower row, then lower dim."""
    both = a if b is None else {f: np.concatenate([a[f], b[f]]) for f in TOPK_FIELDS}
    order = np.lexsort((both["dim"], both["row"], -np.abs(both["value"])))[:k]
    return {f: v[order] for f, v in both.items()}
