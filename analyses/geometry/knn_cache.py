"""One exact nearest-neighbour search shared by the estimators that run on the same rows.

TwoNN needs the distances to the first two neighbours (r1, r2), MLE the first k; both are
columns of one exact k-NN search (`analyses.geometry.neighbours.knn_distances`), which is
almost all of their cost (one n x n x D GEMM). When several estimators run on the same
activations (the demo, `store_curves`, the app's Geometry page, a batch worker), the
process-wide `NEIGHBOURS` cache serves them from one search with k = the largest needed.

- **Key**: a BLAKE2b digest of the rows themselves (float64 bytes, with their shape) and the
  metric ("euclidean"). Rows drawn with another seed or `max_samples`, from another site,
  checkpoint or store, or after the store was rewritten, differ in content and so never
  share; hashing costs ~1 % of a search (20k x 384: 0.05 s against ~3 s).
- **Value**: the (n, k_searched) ascending distances; a request for k <= k_searched is served
  from its first k columns (a copy), which equal a k-search's own result (the same exact
  float64 distances of the same neighbours; tests check to 1e-12). A request for more
  neighbours than cached searches again and replaces the entry.
- **Search width**: k, or more when more will be needed: `plan(k)` (a context manager that
  callers which know their estimators use, e.g. `store_curves`), and what the cache learned:
  once a request found the same rows cached with fewer neighbours, later searches fetch that
  larger k at once (at most `MAX_PREFETCH`). A lone TwoNN therefore searches k = 2 only.
- **Memory**: least-recently-used entries are evicted above `max_bytes` (default 128 MiB, e.g.
  160 entries of 5,000 rows x 20 neighbours); an entry larger than the budget is not kept.
  `NEIGHBOURS.enabled = False` turns sharing off (every call searches, as before).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from analyses.geometry.neighbours import knn_distances
from workbench.errors import InputError

METRIC = "euclidean"
MAX_PREFETCH = 64  # learned search width is capped: a k = 1000 request must not tax TwoNN
DEFAULT_MAX_BYTES = 128 << 20


def rows_key(x: np.ndarray) -> tuple[str, tuple[int, ...], str]:
    """Cache key of a row matrix: (BLAKE2b-128 of its float64 bytes, shape, metric)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    digest = hashlib.blake2b(x.data, digest_size=16)
    digest.update(np.asarray(x.shape, dtype=np.int64).tobytes())
    return digest.hexdigest(), x.shape, METRIC


class NeighbourCache:
    """Bounded LRU cache of exact k-NN distance matrices keyed on row content (module doc).

    Attributes:
        max_bytes: budget for the cached distance matrices (float64 bytes).
        enabled: False makes `distances` search every time and cache nothing.
        searches, hits: counters (searches run, requests served from the cache).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise InputError(f"max_bytes={max_bytes} must be >= 0 (0 keeps nothing)")
        self.max_bytes = max_bytes
        self.enabled = True
        self.searches = 0
        self.hits = 0
        self._entries: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._planned = 0
        self._learned = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached distance matrices."""
        return sum(d.nbytes for d in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry, the learned width and the counters."""
        with self._lock:
            self._entries.clear()
            self._learned = 0
            self.searches = self.hits = 0

    @contextmanager
    def plan(self, k: int) -> Iterator[None]:
        """Inside the block, searches fetch at least `k` neighbours (callers that will ask for
        k neighbours of the same rows later, e.g. MLE after TwoNN)."""
        before = self._planned
        self._planned = max(before, int(k))
        try:
            yield
        finally:
            self._planned = before

    def distances(self, x: np.ndarray, k: int) -> np.ndarray:
        """(n, k) ascending distances from each row of `x` (n, D) to its k nearest other rows,
        exactly as `knn_distances(x, k)`, from the cache when these rows were searched with at
        least k neighbours."""
        x = np.asarray(x, dtype=np.float64)
        if not self.enabled:
            self.searches += 1
            return knn_distances(x, k)
        if not 1 <= k < len(x):  # the search raises the named error
            return knn_distances(x, k)
        key = rows_key(x)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached.shape[1] >= k:
                self._entries.move_to_end(key)
                self.hits += 1
                return cached[:, :k].copy()
            if cached is not None:  # the same rows came back wanting more: fetch more next time
                self._learned = max(self._learned, min(k, MAX_PREFETCH))
            width = min(max(k, self._planned, self._learned), len(x) - 1)
        found = knn_distances(x, width)
        with self._lock:
            self.searches += 1
            self._store(key, found)
        return found[:, :k].copy()

    def _store(self, key: tuple, found: np.ndarray) -> None:
        self._entries.pop(key, None)
        if found.nbytes > self.max_bytes:
            return
        self._entries[key] = found
        total = self.nbytes
        while total > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            total -= dropped.nbytes


NEIGHBOURS = NeighbourCache()


def shared_distances(x: np.ndarray, k: int) -> np.ndarray:
    """`knn_distances(x, k)` through the process-wide cache `NEIGHBOURS`."""
    return NEIGHBOURS.distances(x, k)
