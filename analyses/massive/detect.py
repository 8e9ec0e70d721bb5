"""Streaming detection of massive activations (Sun, Chen, Kolter, Liu 2024, arXiv:2402.17762).

`MassiveDetector` reads the rows of one site batch by batch (a row = one token's hidden state,
d values) and keeps, in memory that does not grow with the number of rows:

- the top-k |a| entries with (row, example, position, token id, dim, signed value, the median
  |a| of the row's hidden state, and their ratio): `np.argpartition` per batch and a merge;
- the per-row lower median of |a| by selection (`np.partition`, O(d) per row, no sort). The
  lower middle value is torch.median's convention, which Sun et al.'s code uses (METHODS.md 7.1);
- Sun et al.'s criterion, both parts counted separately because small models rarely pass the
  absolute one: |a| > `abs_threshold` (default 100) and |a| > `rel_threshold` (default 1000) x
  the median |a| of the row. `massive` lists entries passing both, `massive_relative` entries
  passing the relative part alone (the largest `max_listed` of each);
- the paper's per-sequence statistics (METHODS.md 7.2, Eq. 4-8): for each example the max and
  the lower median of |a| over its S x d activations; `sequence_ratio` = mean(max) / mean(median)
  over examples (a ratio of means, as the paper averages both statistics before dividing);
- which dimensions recur: per dim, the number of examples whose largest |a| lies in it, the rows
  whose largest |a| lies in it, and the rows and examples with a relative-criterion entry in it
  (`recurring_dims` ranks dims by examples, `row_top_dims` by rows, i.e. over every token);
- which tokens carry them: positions and token ids of each example's largest entry.

Rows of one example must be contiguous (as a store writes them); arrays without example
information count each row as its own example. A median of 0 (e.g. ReLU outputs) makes every
nonzero entry pass the relative criterion and the ratio infinite (reported as None in JSON).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from workbench.errors import InputError

_FIELDS = ("abs", "value", "row", "dim", "median")


class _TopEntries:
    """The `k` entries of largest |a| seen so far (ties: lower row, then lower dim first)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.cols: dict[str, np.ndarray] = {
            "abs": np.empty(0),
            "value": np.empty(0),
            "row": np.empty(0, np.int64),
            "dim": np.empty(0, np.int64),
            "median": np.empty(0),
        }

    def merge(self, new: dict[str, np.ndarray]) -> None:
        cols = {f: np.concatenate([self.cols[f], new[f]]) for f in _FIELDS}
        order = np.lexsort((cols["dim"], cols["row"], -cols["abs"]))[: self.k]
        self.cols = {f: cols[f][order] for f in _FIELDS}

    def __len__(self) -> int:
        return len(self.cols["abs"])


def _entries(a: np.ndarray, x: np.ndarray, rows: np.ndarray, med: np.ndarray, flat: np.ndarray):
    r, d = np.divmod(flat, a.shape[1])
    return {
        "abs": a[r, d].astype(np.float64),
        "value": x[r, d].astype(np.float64),
        "row": rows[r],
        "dim": d.astype(np.int64),
        "median": med[r].astype(np.float64),
    }


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the k largest entries of a 1-D array, unordered, plus any entry tied
    with the k-th (so the caller's ordered merge breaks ties the same way whatever the
    batching), by selection: O(n)."""
    n = values.size
    if n <= k:
        return np.arange(n)
    kth = np.partition(values, n - k)[n - k]
    above = np.flatnonzero(values >= kth)
    return above if above.size <= 4 * k else np.argpartition(values, n - k)[n - k :]


def lower_median(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Lower middle value along `axis` by selection (torch.median's convention)."""
    kth = (a.shape[axis] - 1) // 2
    return np.take(np.partition(a, kth, axis=axis), kth, axis=axis)


class MassiveDetector:
    """Accumulate massive-activation statistics over batches of rows of width `width`.

    Use `update(batch, rows, example, position, token)` for each (m, d) batch in row order, then
    `summary()`. `rows` are global row numbers; `example`, `position` and `token` are (m,) arrays
    (or None: each row its own example, position and token unknown).
    """

    def __init__(
        self,
        width: int,
        topk: int = 16,
        abs_threshold: float = 100.0,
        rel_threshold: float = 1000.0,
        max_listed: int = 64,
    ) -> None:
        if topk < 1 or max_listed < 0:
            raise InputError(f"topk must be >= 1 and max_listed >= 0; got {topk}, {max_listed}")
        self.width, self.abs_threshold, self.rel_threshold = width, abs_threshold, rel_threshold
        self.top = _TopEntries(topk)
        self.both = _TopEntries(max_listed)
        self.relative = _TopEntries(max_listed)
        self.n_rows = 0
        self.counts = {"n_abs": 0, "n_rel": 0, "n_both": 0}
        self.max_row_ratio = 0.0
        self.dim_top_examples = np.zeros(width, np.int64)
        self.dim_top_rows = np.zeros(width, np.int64)
        self.dim_rel_rows = np.zeros(width, np.int64)
        self.dim_rel_examples = np.zeros(width, np.int64)
        self._dim_last_example = np.full(width, -1, np.int64)
        self.seq_max_sum = self.seq_median_sum = 0.0
        self.n_examples = 0
        self.carrier_positions: Counter[int] = Counter()
        self.carrier_tokens: Counter[int] = Counter()
        self._pending: list[np.ndarray] = []  # |a| rows of the example not yet complete
        self._pending_meta: list[tuple[np.ndarray, ...]] = []
        self._pending_example: int | None = None
        self._next_example = 0  # example numbers for rows without example information

    # ------------------------------------------------------------------------- update
    def update(
        self,
        batch: np.ndarray,
        rows: np.ndarray,
        example: np.ndarray | None = None,
        position: np.ndarray | None = None,
        token: np.ndarray | None = None,
    ) -> MassiveDetector:
        x = np.asarray(batch)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise InputError(f"batch must be (rows, {self.width}), got {x.shape}")
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise InputError(f"non-finite activation at row {int(rows[bad[0]])}, dim {bad[1]}")
        m = len(x)
        if m == 0:
            return self
        if example is None:
            example = np.arange(self._next_example, self._next_example + m)
            self._next_example += m
        position = np.full(m, -1, np.int64) if position is None else np.asarray(position)
        token = np.full(m, -1, np.int64) if token is None else np.asarray(token)
        a = np.abs(x)
        med = lower_median(a, axis=1)
        row_max = a.max(axis=1)
        row_arg = a.argmax(axis=1)
        self.n_rows += m
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(row_max > 0, row_max / med, 0.0)
        self.max_row_ratio = max(self.max_row_ratio, float(ratio.max()))
        np.add.at(self.dim_top_rows, row_arg, 1)
        # the k largest entries lie in the rows holding the k largest row maxima
        cand = np.sort(_largest(row_max, self.top.k))
        sub = _largest(a[cand].ravel(), self.top.k)
        flat = cand[sub // self.width] * self.width + sub % self.width
        self.top.merge(_entries(a, x, rows, med, flat))
        self._criteria(a, x, rows, med, example)
        self._sequences(a, rows, example, position, token)
        return self

    def _criteria(self, a, x, rows, med, example) -> None:
        rel = a > self.rel_threshold * med[:, None]
        absolute = a > self.abs_threshold
        both = rel & absolute
        self.counts["n_abs"] += int(absolute.sum())
        self.counts["n_rel"] += int(rel.sum())
        self.counts["n_both"] += int(both.sum())
        for mask, listed in ((both, self.both), (rel, self.relative)):
            flat = np.flatnonzero(mask)
            if flat.size and listed.k:
                keep = flat[_largest(a.ravel()[flat], listed.k)]
                listed.merge(_entries(a, x, rows, med, keep))
        r, d = np.nonzero(rel)
        if r.size:
            np.add.at(self.dim_rel_rows, d, 1)
            # distinct examples per dim: examples are contiguous, so a new one differs from the last
            pairs = np.unique(np.stack([example[r], d]), axis=1)
            for ex, dim in pairs.T:
                if self._dim_last_example[dim] != ex:
                    self._dim_last_example[dim] = ex
                    self.dim_rel_examples[dim] += 1

    def _sequences(self, a, rows, example, position, token) -> None:
        """Close each example whose rows are complete; keep the last one pending."""
        starts = np.flatnonzero(np.r_[True, example[1:] != example[:-1]])
        bounds = [*starts.tolist(), len(a)]
        for i in range(len(starts)):
            lo, hi = bounds[i], bounds[i + 1]
            ex = int(example[lo])
            if self._pending_example is not None and ex != self._pending_example:
                self._close()
            self._pending_example = ex
            self._pending.append(a[lo:hi])
            self._pending_meta.append((rows[lo:hi], position[lo:hi], token[lo:hi]))
            if i < len(starts) - 1:
                self._close()

    def _close(self) -> None:
        if not self._pending:
            return
        block = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        pos = np.concatenate([m[1] for m in self._pending_meta])
        tok = np.concatenate([m[2] for m in self._pending_meta])
        flat = block.ravel()
        where = int(flat.argmax())
        r, d = divmod(where, self.width)
        self.seq_max_sum += float(flat[where])
        self.seq_median_sum += float(lower_median(flat))
        self.n_examples += 1
        self.dim_top_examples[d] += 1
        self.carrier_positions[int(pos[r])] += 1
        self.carrier_tokens[int(tok[r])] += 1
        self._pending, self._pending_meta, self._pending_example = [], [], None

    # ------------------------------------------------------------------------ summary
    def summary(
        self,
        example: np.ndarray | None = None,
        position: np.ndarray | None = None,
        token: np.ndarray | None = None,
        decode: Any = None,
        recurring: int = 8,
    ) -> dict[str, Any]:
        """The accumulated statistics as JSON-ready values. `example`, `position` and `token`
        (indexed by global row) annotate listed entries; `decode(token_id) -> str` adds text."""
        self._close()
        if self.n_rows == 0:
            raise InputError("no rows: the store or array is empty")

        def listing(entries: _TopEntries) -> list[dict[str, Any]]:
            out = []
            c = entries.cols
            for i in range(len(entries)):
                row = int(c["row"][i])
                item: dict[str, Any] = {
                    "abs": float(c["abs"][i]),
                    "value": float(c["value"][i]),
                    "row": row,
                    "dim": int(c["dim"][i]),
                    "median_abs_of_row": float(c["median"][i]),
                    "ratio_to_median": _ratio(c["abs"][i], c["median"][i]),
                }
                if example is not None:
                    item["example"] = int(example[row])
                if position is not None:
                    item["position"] = int(position[row])
                if token is not None:
                    item["token_id"] = int(token[row])
                    if decode is not None:
                        item["token"] = decode(int(token[row]))
                out.append(item)
            return out

        top = listing(self.top)
        order = np.lexsort((np.arange(self.width), -self.dim_top_examples))[:recurring]
        dims = [
            {
                "dim": int(j),
                "n_examples_top": int(self.dim_top_examples[j]),
                "share_examples_top": float(self.dim_top_examples[j] / self.n_examples),
                "n_rows_top": int(self.dim_top_rows[j]),
                "n_rows_relative": int(self.dim_rel_rows[j]),
                "n_examples_relative": int(self.dim_rel_examples[j]),
            }
            for j in order
            if self.dim_top_examples[j] > 0
        ]
        by_rows = np.lexsort((np.arange(self.width), -self.dim_top_rows))[:recurring]
        row_dims = [
            {
                "dim": int(j),
                "n_rows_top": int(self.dim_top_rows[j]),
                "share_rows_top": float(self.dim_top_rows[j] / self.n_rows),
            }
            for j in by_rows
            if self.dim_top_rows[j] > 0
        ]
        tokens = [
            {"token_id": t, "n_examples": n, **({"token": decode(t)} if decode and t >= 0 else {})}
            for t, n in self.carrier_tokens.most_common(8)
        ]
        mean_max = self.seq_max_sum / self.n_examples
        mean_median = self.seq_median_sum / self.n_examples
        return {
            "n_rows": self.n_rows,
            "n_examples": self.n_examples,
            "width": self.width,
            "top_values": top,
            "max_abs": top[0]["abs"],
            "ratio_to_median": top[0]["ratio_to_median"],
            "max_row_ratio": self.max_row_ratio if np.isfinite(self.max_row_ratio) else None,
            "sequence_ratio": _ratio(mean_max, mean_median),
            "mean_sequence_max_abs": mean_max,
            "mean_sequence_median_abs": mean_median,
            "criteria": {
                "abs_threshold": self.abs_threshold,
                "rel_threshold": self.rel_threshold,
                **self.counts,
            },
            "massive": listing(self.both),
            "massive_relative": listing(self.relative),
            "recurring_dims": dims,
            "row_top_dims": row_dims,
            "carrier_positions": {
                str(p): n for p, n in sorted(self.carrier_positions.items())[:16] if p >= 0
            },
            "share_first_position": float(self.carrier_positions.get(0, 0) / self.n_examples)
            if any(p >= 0 for p in self.carrier_positions)
            else None,
            "carrier_tokens": tokens,
            "share_delimiter": None
            if decode is None
            else float(
                sum(n for t, n in self.carrier_tokens.items() if t >= 0 and is_delimiter(decode(t)))
                / self.n_examples
            ),
        }


SPECIAL_TOKENS = {"[CLS]", "[SEP]", "<|endoftext|>", "<s>", "</s>", "<bos>", "<eos>", "<pad>"}


def is_delimiter(text: str) -> bool:
    """A special token ([CLS], <|endoftext|>, ...) or a token of punctuation/whitespace only
    ('.', ',', '\\n'): the token kinds Sun et al. find carrying massive activations."""
    stripped = text.strip()
    return stripped in SPECIAL_TOKENS or not any(ch.isalnum() for ch in stripped)


def _ratio(num: float, den: float) -> float | None:
    """num / den, None where den is 0 (the ratio is infinite)."""
    return float(num / den) if den > 0 else None
