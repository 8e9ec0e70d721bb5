"""Where an SAE reads its rows: an in-memory array or a store site, in shuffled batches.

`RowSource` gives each epoch's batches in a fixed order (`np.random.default_rng(seed +
epoch).permutation(n_rows)`, the permutation `ActivationStore.iter_batches(shuffle=True,
seed=seed + epoch)` uses), and can start from any batch of an epoch without reading the ones
before it, which is what makes a resumed run see exactly the rows an uninterrupted one sees.
Store rows are gathered from the memory-mapped shards one batch at a time, so memory does not
grow with the store.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import InputError


@dataclass
class RowSource:
    """Rows of an (n, d) array, or of `site` in an `ActivationStore`."""

    array: np.ndarray | None = None
    store: Any = None
    site: str | None = None

    def __post_init__(self) -> None:
        if self.array is not None:
            array = np.asarray(self.array)
            if array.ndim != 2:
                raise InputError(
                    f"activations must be a 2-D (rows, d_in) array, got shape {array.shape}"
                )
            if array.dtype.kind != "f":
                raise InputError(f"activations must be floating point, got dtype {array.dtype}")
            self.array = array
        elif self.store is None or self.site is None:
            raise InputError("give an array, or a store and a site")
        else:
            self.store.site_info(self.site)  # unknown site -> error naming valid ones

    @property
    def n_rows(self) -> int:
        return int(self.array.shape[0]) if self.array is not None else int(self.store.n_rows)

    @property
    def d_in(self) -> int:
        if self.array is not None:
            return int(self.array.shape[1])
        return int(self.store.site_info(self.site)["width"])

    def describe(self) -> dict[str, Any]:
        if self.array is not None:
            return {"source": "array", "n_rows": self.n_rows, "d_in": self.d_in}
        return {
            "source": "store",
            "store": str(self.store.path),
            "site": self.site,
            "spec": self.store.spec,
            "n_rows": self.n_rows,
            "d_in": self.d_in,
        }

    def read(self, rows: np.ndarray | slice) -> np.ndarray:
        """float32 rows (a slice or an index array), checked finite."""
        if self.array is not None:
            out = np.asarray(self.array[rows], dtype=np.float32)
        else:
            out = self.store.read(self.site, rows, dtype=np.float32)
        if not np.isfinite(out).all():
            where = np.argwhere(~np.isfinite(out))[0]
            origin = "the array" if self.array is not None else f"site {self.site!r}"
            raise InputError(
                f"NaN/Inf in the activations of {origin} (first at batch row {int(where[0])}, "
                f"dim {int(where[1])}); an SAE needs finite inputs"
            )
        return out

    def epoch_batches(
        self, batch_size: int, seed: int, epoch: int, start_batch: int = 0
    ) -> Generator[np.ndarray, None, None]:
        """Shuffled (<= batch_size, d_in) batches of one epoch from batch `start_batch` on."""
        perm = np.random.default_rng(seed + epoch).permutation(self.n_rows)
        for start in range(start_batch * batch_size, self.n_rows, batch_size):
            yield self.read(np.sort(perm[start : start + batch_size]))

    def sequential(self, batch_size: int) -> Iterator[np.ndarray]:
        """Every row once, in order."""
        for start in range(0, self.n_rows, batch_size):
            yield self.read(slice(start, min(self.n_rows, start + batch_size)))


def as_row_source(data: Any, site: str | None = None) -> RowSource:
    """A `RowSource` from an array (numpy or torch), a `RowSource`, or a store plus `site`."""
    if isinstance(data, RowSource):
        return data
    if hasattr(data, "iter_batches") and hasattr(data, "site_info"):
        if site is None:
            raise InputError(f"a store needs a site; stored sites: {data.sites}")
        return RowSource(store=data, site=site)
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    return RowSource(array=np.asarray(data))
