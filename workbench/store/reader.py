"""ActivationStore: read a complete store through memory-mapped shards.

Only complete stores open (an interrupted capture raises StoreIncompleteError). Opening checks
every committed file's size against the manifest (truncation is caught at once); the full
checksum pass is ``verify()``. Reads gather rows chunk by chunk from memory-mapped .npy shards,
so a read costs memory for its result only.

bfloat16 stores: numpy has no bfloat16, so reads return float32 for them (an exact widening)
whatever the `dtype` asked (None included); ask for another dtype to get a cast of that.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import (
    InputError,
    StoreCorruptError,
    StoreError,
    StoreIncompleteError,
    UnknownSiteError,
    closest,
)
from workbench.store import files as F
from workbench.store import manifest as M
from workbench.store.dtypes import STORED_NUMPY, bf16_bits_to_f32
from workbench.store.stats import load_stats


class ActivationStore:
    """A complete store at `path`; ``verify=True`` also re-hashes every file (slow)."""

    def __init__(self, path: str | os.PathLike, verify: bool = False):
        self.path = Path(path).absolute()  # results record it: valid from any cwd
        manifest = M.read_manifest(self.path)
        if manifest is None:
            raise StoreError(f"{self.path} is not an activation store (no {M.MANIFEST_NAME})")
        if not manifest["complete"]:
            chunks = manifest["chunks"]
            raise StoreIncompleteError(
                f"the store at {self.path}: capture did not finish; re-run the same capture "
                f"command to resume ({len(chunks)} chunks, {manifest['n_rows']} rows, "
                f"{manifest['n_examples']} examples committed)"
            )
        self.manifest = manifest
        chunks = manifest["chunks"]
        self._starts = np.array([c["row_start"] for c in chunks] + [manifest["n_rows"]], np.int64)
        self._maps: dict[tuple[str, int], np.ndarray] = {}
        self._rows: dict[str, np.ndarray] = {}
        self._check_sizes()
        if verify:
            self.verify()

    # -- metadata ---------------------------------------------------------------------------

    @property
    def spec(self) -> dict[str, Any]:
        return self.manifest["spec"]

    @property
    def provenance(self) -> dict[str, Any]:
        return self.manifest["provenance"]

    @property
    def sites(self) -> list[str]:
        return list(self.manifest["sites"])

    @property
    def n_rows(self) -> int:
        return self.manifest["n_rows"]

    @property
    def n_examples(self) -> int:
        return self.manifest["n_examples"]

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.path)!r}, n_rows={self.n_rows}, sites={self.sites})"

    def site_info(self, site: str) -> dict[str, Any]:
        """{dtype, row_shape, width, n_rows} of `site` (dtype: float32/float16/bfloat16)."""
        if site not in self.manifest["sites"]:
            raise UnknownSiteError(
                f"site {site!r} is not in the store at {self.path}; did you mean "
                f"{closest(site, self.sites)}? Stored sites: {self.sites}"
            )
        return dict(self.manifest["sites"][site])

    def shard_paths(self, site: str) -> list[Path]:
        self.site_info(site)
        return [self.path / M.site_file(site, c["index"]) for c in self.manifest["chunks"]]

    # -- integrity --------------------------------------------------------------------------

    def _check_sizes(self) -> None:
        for rel, record in M.committed_files(self.manifest).items():
            self._check_size(rel, record["bytes"])

    def _check_size(self, rel: str, expected: int) -> None:
        try:
            size: int | None = (self.path / rel).stat().st_size
        except FileNotFoundError:
            size = None
        if size != expected:
            got = "missing" if size is None else f"{size} bytes"
            raise StoreCorruptError(
                f"{self.path / rel}: {got}, the manifest says {expected} bytes (truncated or "
                "replaced); re-capture this store"
            )

    def verify(self) -> None:
        """Re-hash every committed file; StoreCorruptError lists each mismatch (expected/got)."""
        bad = []
        for rel, record in M.committed_files(self.manifest).items():
            try:
                got = F.checksum_file(self.path / rel, self.manifest["checksum_algorithm"])
            except FileNotFoundError:
                bad.append(f"{self.path / rel}: missing")
                continue
            if got.bytes != record["bytes"] or got.checksum != record["checksum"]:
                bad.append(
                    f"{self.path / rel}: expected {record['bytes']} bytes "
                    f"{self.manifest['checksum_algorithm']} {record['checksum']}, "
                    f"got {got.bytes} bytes {got.checksum}"
                )
        if bad:
            raise StoreCorruptError("corrupt store files:\n" + "\n".join(bad))

    # -- activations ------------------------------------------------------------------------

    def _shard(self, site: str, chunk: int) -> np.ndarray:
        key = (site, chunk)
        if key not in self._maps:
            entry = self.manifest["chunks"][chunk]
            rel = M.site_file(site, entry["index"])
            self._check_size(rel, entry["files"][rel]["bytes"])
            try:
                shard = np.load(self.path / rel, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as e:
                raise StoreCorruptError(f"{self.path / rel}: unreadable .npy ({e})") from e
            expected = (entry["n_rows"], self.manifest["sites"][site]["width"])
            if shard.shape != expected:
                raise StoreCorruptError(
                    f"{self.path / rel}: shape {shard.shape}, the manifest says {expected}"
                )
            self._maps[key] = shard
        return self._maps[key]

    def _out_dtype(self, site: str, dtype: Any) -> np.dtype:
        stored = self.manifest["sites"][site]["dtype"]
        if dtype is None:
            return np.dtype(np.float32) if stored == "bfloat16" else STORED_NUMPY[stored]
        return np.dtype(dtype)

    def read(
        self, site: str, rows: slice | np.ndarray | None = None, dtype: Any = np.float32
    ) -> np.ndarray:
        """Rows of `site` as a (len(rows), width) array of `dtype` (None: as stored).

        rows: None (all), a slice, an int index array (negative wraps, any order, repeats
        allowed) or a boolean mask of length n_rows. Gathers chunk by chunk from the
        memory-mapped shards; bfloat16 comes back as float32 (numpy has no bfloat16).
        """
        info = self.site_info(site)
        out_dtype = self._out_dtype(site, dtype)
        n = self.n_rows
        if rows is None:
            rows = slice(None)
        if isinstance(rows, slice):
            start, stop, step = rows.indices(n)
            if step == 1:
                return self._read_range(site, start, max(start, stop), out_dtype)
            rows = np.arange(start, stop, step)
        index = self._as_index(rows)
        out = np.empty((len(index), info["width"]), out_dtype)
        order = np.argsort(index, kind="stable")
        sorted_index = index[order]
        bounds = np.searchsorted(sorted_index, self._starts)
        for chunk in range(len(self._starts) - 1):
            a, b = bounds[chunk], bounds[chunk + 1]
            if a < b:
                local = sorted_index[a:b] - self._starts[chunk]
                _fill(out, order[a:b], self._shard(site, chunk)[local], info["dtype"])
        return out

    def _as_index(self, rows: Any) -> np.ndarray:
        index = np.asarray(rows)
        n = self.n_rows
        if index.dtype == bool:
            if index.shape != (n,):
                raise InputError(f"a boolean row mask must have shape ({n},), got {index.shape}")
            return np.flatnonzero(index)
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise InputError(
                f"rows must be None, a slice, a 1-D int array or a bool mask; got "
                f"{type(rows).__name__} of shape {index.shape} and dtype {index.dtype}"
            )
        index = index.astype(np.int64, copy=False)
        if index.size and (index.min() < -n or index.max() >= n):
            raise InputError(
                f"row index out of range: got min {index.min()}, max {index.max()}, the store "
                f"has {n} rows"
            )
        return np.where(index < 0, index + n, index)

    def _read_range(self, site: str, start: int, stop: int, out_dtype: np.dtype) -> np.ndarray:
        info = self.manifest["sites"][site]
        out = np.empty((stop - start, info["width"]), out_dtype)
        first = max(0, int(np.searchsorted(self._starts, start, side="right")) - 1)
        for chunk in range(first, len(self._starts) - 1):
            c0, c1 = int(self._starts[chunk]), int(self._starts[chunk + 1])
            if c0 >= stop:
                break
            a, b = max(start, c0), min(stop, c1)
            if a < b:
                src = self._shard(site, chunk)[a - c0 : b - c0]
                _fill(out, slice(a - start, b - start), src, info["dtype"])
        return out

    def iter_batches(
        self,
        site: str,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        dtype: Any = np.float32,
    ) -> Iterator[np.ndarray]:
        """(≤batch_size, width) batches covering every row once; the last may be short.

        shuffle: rows in the order of ``np.random.default_rng(seed).permutation(n_rows)``
        (each batch gathered chunk-wise from the memory maps); otherwise in store order.
        """
        self.site_info(site)
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        n = self.n_rows
        perm = np.random.default_rng(seed).permutation(n) if shuffle else None
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            rows = slice(start, stop) if perm is None else perm[start:stop]
            yield self.read(site, rows, dtype=dtype)

    # -- per-row and per-example data -------------------------------------------------------

    def _concat(self, make_rel, name: str) -> np.ndarray:
        if name not in self._rows:
            parts = []
            for chunk in self.manifest["chunks"]:
                rel = make_rel(chunk["index"])
                self._check_size(rel, chunk["files"][rel]["bytes"])
                parts.append(np.load(self.path / rel, allow_pickle=False))
            array = np.concatenate(parts)
            array.flags.writeable = False
            self._rows[name] = array
        return self._rows[name]

    def _row_field(self, field: str) -> np.ndarray:
        return self._concat(lambda i: M.row_file(field, i), f"rows/{field}")

    def token_ids(self) -> np.ndarray:
        """(n_rows,) int64 token id of each row; -1 where the row has no token."""
        return self._row_field("token_ids")

    def example_index(self) -> np.ndarray:
        """(n_rows,) int64 index of the example each row comes from."""
        return self._row_field("example_index")

    def positions(self) -> np.ndarray:
        """(n_rows,) int64 position of each row in its unpadded sequence (0: no sequence)."""
        return self._row_field("position")

    def row_labels(self) -> dict[str, np.ndarray]:
        """name -> (n_rows,) per-row label."""
        return {
            name: self._concat(lambda i, n=name: M.row_label_file(n, i), f"row_labels/{name}")
            for name in self.manifest["row_labels"]
        }

    def example_labels(self) -> dict[str, np.ndarray]:
        """name -> (n_examples,) per-example label, indexed by example_index."""
        return {
            name: self._concat(
                lambda i, n=name: M.example_label_file(n, i), f"example_labels/{name}"
            )
            for name in self.manifest["example_labels"]
        }

    def stats(self, site: str) -> dict[str, Any]:
        """The streaming statistics of `site` gathered at capture (RunningStats.summary())."""
        self.site_info(site)
        record = self.manifest["stats"]
        self._check_size(record["file"], record["bytes"])
        with np.load(self.path / record["file"], allow_pickle=False) as npz:
            stats = load_stats(npz)
        return stats[site].summary()


def _fill(out: np.ndarray, where: Any, src: np.ndarray, stored: str) -> None:
    """out[where] = values of on-disk `src` (bf16 bits widened to float32)."""
    out[where] = bf16_bits_to_f32(src) if stored == "bfloat16" else src
