"""What an analysis reads: activations from a store site or from arrays the user brings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import InputError

#: the levels a store label can have: "token" (a row label, one value per row/token) and
#: "example" (one value per example, read on each of its rows)
LABEL_LEVELS = ("token", "example")


def load_array(path: str | Path) -> np.ndarray:
    """Read a `.npy` (never unpickling), a one-tensor `.safetensors` file (`file:key` picks a
    tensor out of several), or a `.csv`/`.parquet` table of numeric columns (in their order, e.g.
    `step,value[,layer]` for `massive-fit`)."""
    text = str(path)
    key = None
    if ".safetensors:" in text:
        text, key = text.rsplit(":", 1)
    path = Path(text)
    if not path.is_file():
        raise InputError(f"array file {text!r} does not exist")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputError(
                f"{text!r} is an object (pickled) .npy; save a numeric array instead"
            ) from exc
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        if key is None:
            if len(tensors) != 1:
                raise InputError(
                    f"{text!r} holds tensors {sorted(tensors)}; name one as {text}:KEY"
                )
            return next(iter(tensors.values()))
        if key not in tensors:
            raise InputError(f"no tensor {key!r} in {text!r}; valid: {', '.join(sorted(tensors))}")
        return tensors[key]
    if path.suffix in (".csv", ".parquet"):
        import pandas as pd

        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        numeric = frame.select_dtypes("number")
        if numeric.shape[1] != frame.shape[1]:
            bad = [c for c in frame.columns if c not in numeric.columns]
            raise InputError(f"{text!r} has non-numeric columns {bad}; only numbers can be read")
        return numeric.to_numpy(dtype=np.float64)
    raise InputError(
        f"unknown array format {path.suffix!r} for {text!r}; valid: .npy, .safetensors, "
        ".csv, .parquet (numeric columns, in their order)"
    )


@dataclass
class Source:
    """Inputs of one analysis run.

    Either a store and a site (rows read memory-mapped, on demand) or in-memory arrays:
    `acts` (n, d), optional `acts_b` (n, d_b), `labels` (n,), `weights` (classes, d).
    A comparison reads its second matrix from `acts_b` or from `store_b`/`site_b`; labels come
    from `labels` or, for a store, from the row or example label named `label`.
    """

    acts: np.ndarray | None = None
    acts_b: np.ndarray | None = None
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None
    store: Any = None  # workbench.store.ActivationStore
    site: str | None = None
    store_b: Any = None
    site_b: str | None = None
    label: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_store(
        cls,
        store: Any,
        site: str,
        label: str | None = None,
        store_b: Any = None,
        site_b: str | None = None,
    ) -> Source:
        """A store site; optionally a label name and a second store/site to compare with
        (`site_b` defaults to `site`, `store_b` to `store`)."""
        _check_site(store, site)
        provenance: dict[str, Any] = {"store": str(store.path), "site": site, "spec": store.spec}
        if store_b is not None or site_b is not None:
            store_b = store if store_b is None else store_b
            site_b = site if site_b is None else site_b
            _check_site(store_b, site_b)
            provenance.update(store_b=str(store_b.path), site_b=site_b, spec_b=store_b.spec)
        if label is not None:
            names = [*store.manifest["row_labels"], *store.manifest["example_labels"]]
            if label not in names:
                raise InputError(
                    f"store has no label {label!r}; valid: {', '.join(names) or 'none'}"
                )
            provenance["label"] = label
        return cls(
            store=store,
            site=site,
            store_b=store_b,
            site_b=site_b,
            label=label,
            provenance=provenance,
        )

    def matrix(self) -> np.ndarray:
        """The activations as a 2-D float array (n, d)."""
        if self.acts is not None:
            acts = np.asarray(self.acts)
        elif self.store is not None and self.site is not None:
            acts = self.store.read(self.site)
        else:
            raise InputError("no activations given: pass --acts FILE or --store DIR --site SITE")
        return _as_rows(acts)

    def matrix_b(self) -> np.ndarray:
        """The second activation matrix (n, d_b) of a comparison."""
        if self.acts_b is not None:
            return _as_rows(np.asarray(self.acts_b))
        if self.store_b is not None and self.site_b is not None:
            return _as_rows(self.store_b.read(self.site_b))
        raise InputError(
            "this analysis compares two representations: pass --acts-b FILE, or --store-b DIR "
            "and/or --site-b SITE"
        )

    def label_levels(self) -> list[str]:
        """The levels (`LABEL_LEVELS` order) at which the store holds the label `label`:
        "token" (a row label: one value per token/row) and/or "example" (one per example)."""
        if self.store is None or self.label is None:
            return []
        manifest = self.store.manifest
        keys = {"token": "row_labels", "example": "example_labels"}
        return [level for level in LABEL_LEVELS if self.label in manifest[keys[level]]]

    def resolve_label_level(self, level: str = "auto") -> str:
        """The level `label_array(level)` reads: "token" or "example" for a store label,
        "given" for labels passed as an array. "auto" takes the only level at which the store
        holds the name; a name held at both levels is ambiguous under "auto" and raises an
        InputError naming both, so no analysis silently prefers one."""
        if level not in ("auto", *LABEL_LEVELS):
            raise InputError(
                f"setting label_level={level!r}; valid: auto, {', '.join(LABEL_LEVELS)}"
            )
        if self.labels is not None:
            return "given"
        if self.store is None or self.label is None:
            raise InputError(
                "this analysis needs labels: pass --labels FILE, or --label NAME with --store"
            )
        levels = self.label_levels()
        if not levels:
            raise InputError(f"store has no label {self.label!r}")
        if level == "auto":
            if len(levels) > 1:
                raise InputError(
                    f"label {self.label!r} exists at both levels in this store: per token (a "
                    f"row label) and per example; choose one with label_level=token or "
                    f"label_level=example"
                )
            return levels[0]
        if level not in levels:
            raise InputError(
                f"store has no {level}-level label {self.label!r}; it has {self.label!r} per "
                f"{' and per '.join(levels)}: use label_level={levels[0]}"
            )
        return level

    def label_array(self, level: str = "auto") -> np.ndarray:
        """(n,) labels of the rows: the given array, or the store's label `label` at `level`:
        "token" (its row label), "example" (its example label broadcast to rows through
        `example_index`) or "auto" (the only level the store holds it at; see
        `resolve_label_level`, which raises for a name held at both)."""
        resolved = self.resolve_label_level(level)
        if self.labels is not None:
            labels = np.asarray(self.labels)
            return labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
        if resolved == "token":
            return np.asarray(self.store.row_labels()[self.label])
        return np.asarray(self.store.example_labels()[self.label])[self.store.example_index()]

    def groups(self) -> np.ndarray | None:
        """(n,) example index of each row (rows of one example belong together when splitting
        into train and test), or None for arrays without that information."""
        if self.store is not None:
            return np.asarray(self.store.example_index())
        return None

    def iter_rows(self, batch_size: int = 65536) -> Iterator[np.ndarray]:
        """The activations as consecutive (<= batch_size, d) float batches, in row order; from a
        store they are read chunk by chunk, so memory does not grow with the number of rows."""
        if self.acts is None and self.store is not None and self.site is not None:
            for batch in self.store.iter_batches(self.site, batch_size):
                yield _as_rows(batch)
            return
        acts = self.matrix()
        for start in range(0, len(acts), batch_size):
            yield acts[start : start + batch_size]


def _as_rows(acts: np.ndarray) -> np.ndarray:
    if acts.ndim == 1:
        acts = acts[:, None]
    if acts.ndim > 2:
        acts = acts.reshape(acts.shape[0], -1)
    if not np.issubdtype(acts.dtype, np.floating):
        acts = acts.astype(np.float64)
    elif acts.dtype.itemsize < 4:
        # half precision (a float16 array or store): numpy computes in it slowly, and its sums
        # and products overflow at 65504, so analyses get float32
        acts = acts.astype(np.float32)
    return acts


def _check_site(store: Any, site: str) -> None:
    if site not in store.sites:
        from workbench.errors import UnknownSiteError, closest

        raise UnknownSiteError(
            f"store has no site {site!r}; closest: {', '.join(closest(site, store.sites))}"
        )
