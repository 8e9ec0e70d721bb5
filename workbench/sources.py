"""What an analysis reads: activations from a store site or from arrays the user brings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import InputError


def load_array(path: str | Path) -> np.ndarray:
    """Read a `.npy` (never unpickling) or a one-tensor `.safetensors` file (`file:key` picks a
    tensor out of several)."""
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
    raise InputError(
        f"unknown array format {path.suffix!r} for {text!r}; valid: .npy, .safetensors"
    )


@dataclass
class Source:
    """Inputs of one analysis run.

    Either a store and a site (rows read memory-mapped, on demand) or in-memory arrays:
    `acts` (n, d), optional `acts_b` (n, d_b), `labels` (n,), `weights` (classes, d).
    """

    acts: np.ndarray | None = None
    acts_b: np.ndarray | None = None
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None
    store: Any = None  # workbench.store.ActivationStore
    site: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_store(cls, store: Any, site: str) -> Source:
        if site not in store.sites:
            from workbench.errors import UnknownSiteError, closest

            raise UnknownSiteError(
                f"store has no site {site!r}; closest: {', '.join(closest(site, store.sites))}"
            )
        return cls(
            store=store,
            site=site,
            provenance={"store": str(store.path), "site": site, "spec": store.spec},
        )

    def matrix(self) -> np.ndarray:
        """The activations as a 2-D float array (n, d)."""
        if self.acts is not None:
            acts = np.asarray(self.acts)
        elif self.store is not None and self.site is not None:
            acts = self.store.read(self.site)
        else:
            raise InputError("no activations given: pass --acts FILE or --store DIR --site SITE")
        if acts.ndim == 1:
            acts = acts[:, None]
        if acts.ndim > 2:
            acts = acts.reshape(acts.shape[0], -1)
        if not np.issubdtype(acts.dtype, np.floating):
            acts = acts.astype(np.float64)
        return acts
