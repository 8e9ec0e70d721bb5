"""Validation and conversion of one appended chunk, before anything touches the disk."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import InputError, NonFiniteActivationError
from workbench.store import manifest as M
from workbench.store.dtypes import bf16_bits_to_f32, is_torch_tensor, to_numpy_rows, to_stored

_DTYPE_ALIASES = {
    "float32": "float32", "fp32": "float32", "float": "float32", "torch.float32": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16", "torch.float16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16", "torch.bfloat16": "bfloat16",
}  # fmt: skip


@dataclass
class PreparedChunk:
    """One validated chunk: arrays in their on-disk representation, ready to be written."""

    index: int
    row_start: int
    n_rows: int
    examples: tuple[int, int]
    arrays: dict[str, np.ndarray]  # site -> (rows, width), stored dtype (bf16 as uint16)
    sites: dict[str, dict[str, Any]]  # site -> {dtype, row_shape, width}
    token_ids: np.ndarray
    example_index: np.ndarray
    position: np.ndarray
    row_labels: dict[str, np.ndarray] = field(default_factory=dict)
    example_labels: dict[str, np.ndarray] = field(default_factory=dict)

    def files(self) -> Iterator[tuple[str, np.ndarray]]:
        """(relative path, array) of every file of the chunk."""
        for site, array in self.arrays.items():
            yield M.site_file(site, self.index), array
        for name in M.ROW_FIELDS:
            yield M.row_file(name, self.index), getattr(self, name)
        for name, array in self.row_labels.items():
            yield M.row_label_file(name, self.index), array
        for name, array in self.example_labels.items():
            yield M.example_label_file(name, self.index), array

    def check_finite(self, chunk_stats: dict[str, Any]) -> None:
        """NonFiniteActivationError naming the site, row and dim of the first NaN/Inf."""
        for site, stats in chunk_stats.items():
            if self.n_rows and not (np.isfinite(stats.min).all() and np.isfinite(stats.max).all()):
                array = self.arrays[site]
                values = (
                    bf16_bits_to_f32(array) if self.sites[site]["dtype"] == "bfloat16" else array
                )
                row, dim = np.argwhere(~np.isfinite(values))[0]
                raise NonFiniteActivationError(
                    f"site {site!r}: non-finite value {values[row, dim]} at row {row} "
                    f"(example {self.example_index[row]}, position {self.position[row]}), dim "
                    f"{dim} (stored as {self.sites[site]['dtype']}); nothing was written"
                )

    def manifest_after(self, manifest: dict[str, Any], records: dict[str, Any]) -> dict[str, Any]:
        """A new manifest dict: `manifest` with this chunk committed (`records`: file -> json)."""
        new = copy.deepcopy(manifest)
        for site, info in self.sites.items():
            entry = new["sites"].setdefault(site, {**info, "n_rows": 0})
            entry["n_rows"] += self.n_rows
        for kind, labels in (
            ("row_labels", self.row_labels),
            ("example_labels", self.example_labels),
        ):
            for name, array in labels.items():
                new[kind].setdefault(name, array.dtype.name)
        new["chunks"].append(
            {
                "index": self.index,
                "n_rows": self.n_rows,
                "row_start": self.row_start,
                "examples": list(self.examples),
                "files": records,
            }
        )
        new["n_rows"] = self.row_start + self.n_rows
        new["n_examples"] = self.examples[1]
        return new


def stored_dtype(spec: dict[str, Any], source: str) -> str:
    """The on-disk dtype: spec['dtype'] if given, else the source's (float64 -> float32)."""
    wanted = spec.get("dtype")
    if wanted is None:
        return source if source in M.DTYPES else "float32"
    name = _DTYPE_ALIASES.get(str(wanted).lower())
    if name is None:
        raise InputError(f"spec['dtype']={wanted!r} cannot be stored; choose one of {M.DTYPES}")
    return name


def expected_sites(manifest: dict[str, Any], spec: dict[str, Any]) -> list[str] | None:
    if manifest["sites"]:
        return list(manifest["sites"])
    listed = spec.get("sites")
    if not isinstance(listed, list) or not listed or not all(isinstance(s, str) for s in listed):
        return None
    if any(ch in s for s in listed for ch in "*?["):
        return None
    return list(listed)  # patterns or absent: the first chunk fixes the set


def _int_rows(values: Any, n: int, name: str, default: int | None) -> np.ndarray:
    if values is None:
        if default is None:
            raise InputError(f"{name} is required: one int per row ({n} rows)")
        return np.full(n, default, np.int64)
    if is_torch_tensor(values):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.shape != (n,):
        raise InputError(f"{name}: expected shape ({n},) (one per row), got {array.shape}")
    if array.dtype.kind not in "iu" and n:
        raise InputError(f"{name}: expected integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _labels(
    labels: dict[str, Any] | None, known: dict[str, str], length: int, kind: str, first: bool
) -> dict[str, np.ndarray]:
    labels = dict(labels or {})
    if not first and set(labels) != set(known):
        raise InputError(
            f"{kind}: this store has labels {sorted(known)}, got {sorted(labels)}; every chunk "
            "must carry the same label names"
        )
    out = {}
    for name, values in labels.items():
        M.check_name(name, f"{kind} label")
        if is_torch_tensor(values):
            values = values.detach().cpu().numpy()
        array = np.asarray(values)
        if array.shape != (length,):
            raise InputError(f"{kind}[{name!r}]: expected shape ({length},), got {array.shape}")
        if array.dtype.kind not in "biuf":
            raise InputError(f"{kind}[{name!r}]: expected numbers, got dtype {array.dtype}")
        if name in known:
            if not np.can_cast(array.dtype, known[name], casting="same_kind"):
                raise InputError(
                    f"{kind}[{name!r}]: dtype {array.dtype} does not fit the stored {known[name]}"
                )
            array = array.astype(known[name], copy=False)
        out[name] = np.ascontiguousarray(array)
    return out


def prepare_chunk(
    manifest: dict[str, Any],
    spec: dict[str, Any],
    acts: dict[str, Any],
    token_ids: Any,
    example_index: Any,
    position: Any,
    row_labels: dict[str, Any] | None,
    example_labels: dict[str, Any] | None,
    example_stop: int | None,
) -> PreparedChunk:
    """Validate one append's inputs against the store; raise InputError naming what is wrong."""
    if not isinstance(acts, dict) or not acts:
        raise InputError("acts must be a non-empty dict: site -> (rows, ...) array")
    expected = expected_sites(manifest, spec)
    if expected is not None and set(acts) != set(expected):
        missing, extra = sorted(set(expected) - set(acts)), sorted(set(acts) - set(expected))
        raise InputError(
            f"acts must hold exactly this store's sites {sorted(expected)}; missing {missing}, "
            f"unexpected {extra}"
        )
    arrays, sites = {}, {}
    n_rows: int | None = None
    first_site: tuple[str, tuple[int, ...]] = ("", ())
    for site, value in acts.items():
        M.check_name(site, "site")
        array, source = to_numpy_rows(value, f"site {site!r}")
        if array.ndim == 0:
            raise InputError(f"site {site!r}: expected (rows, ...) activations, got a scalar")
        if n_rows is None:
            n_rows, first_site = array.shape[0], (site, array.shape)
        elif array.shape[0] != n_rows:
            raise InputError(
                f"site {site!r} has shape {tuple(array.shape)} but site {first_site[0]!r} has "
                f"shape {tuple(first_site[1])}; every site must have the same number of rows"
            )
        row_shape = [int(d) for d in array.shape[1:]]
        known = manifest["sites"].get(site)
        if known is not None and row_shape != known["row_shape"]:
            raise InputError(
                f"site {site!r}: expected shape (rows, {', '.join(map(str, known['row_shape']))}) "
                f"(width {known['width']}, as in earlier chunks), got {tuple(array.shape)}"
            )
        dtype = known["dtype"] if known else stored_dtype(spec, source)
        width = math.prod(row_shape)
        arrays[site] = np.ascontiguousarray(to_stored(array.reshape(n_rows, width), source, dtype))
        sites[site] = {"dtype": dtype, "row_shape": row_shape, "width": width}
    assert n_rows is not None
    chunks = manifest["chunks"]
    start = chunks[-1]["examples"][1] if chunks else 0
    examples = _int_rows(example_index, n_rows, "example_index", None)
    if n_rows and examples.min() < start:
        raise InputError(
            f"example_index holds {examples.min()}, but examples before {start} are already "
            f"committed (resume_point={start}); skip them"
        )
    last = int(examples.max()) + 1 if n_rows else start
    stop = last if example_stop is None else int(example_stop)
    if stop < last or stop < start or (stop == start and not n_rows):
        raise InputError(
            f"example_stop={example_stop} must be >= {max(last, start)} (past the last example "
            f"in example_index) and cover at least one example; nothing to append"
        )
    first = not chunks
    return PreparedChunk(
        index=len(chunks),
        row_start=manifest["n_rows"],
        n_rows=n_rows,
        examples=(start, stop),
        arrays=arrays,
        sites=sites,
        token_ids=_int_rows(token_ids, n_rows, "token_ids", -1),
        example_index=examples,
        position=_int_rows(position, n_rows, "position", 0),
        row_labels=_labels(row_labels, manifest["row_labels"], n_rows, "row_labels", first),
        example_labels=_labels(
            example_labels, manifest["example_labels"], stop - start, "example_labels", first
        ),
    )
