"""Steering vectors: a direction at one site, with where it came from.

A `SteeringVector` is a (d,) direction, or a (T, d) per-position steering tensor for ActAdd
(Turner et al. 2023, arXiv:2308.10248), at a named site. It saves as `NAME.safetensors` (the
tensor) beside `NAME.json` (site, method, provenance); the JSON is written last, atomically, so a
vector without its JSON is not a finished vector.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from workbench.errors import InputError

FORMAT_VERSION = 1


@dataclass
class SteeringVector:
    """A steering direction.

    Attributes:
        vector: (d,) direction, or (T, d) per-position tensor (ActAdd "front" injection).
        site: the site it was read at and is applied to.
        method: how it was made: "mean-diff", "pca", "actadd", "probe", "sae", "store", ...
        provenance: JSON-ready facts (model, checkpoint step, weights hash, data, read position).
    """

    vector: torch.Tensor
    site: str
    method: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        vector = torch.as_tensor(self.vector).detach().to("cpu", torch.float32)
        if vector.ndim not in (1, 2) or vector.shape[-1] == 0:
            raise InputError(
                f"a steering vector must be (d,) or (T, d); got shape {tuple(vector.shape)}"
            )
        if not bool(torch.isfinite(vector).all()):
            raise InputError(f"steering vector for {self.site!r} contains NaN or Inf")
        if float(vector.norm()) == 0.0:
            raise InputError(f"steering vector for {self.site!r} is the zero vector")
        self.vector = vector

    @property
    def width(self) -> int:
        return int(self.vector.shape[-1])

    @property
    def norm(self) -> float:
        """L2 norm (of the whole tensor for a per-position vector)."""
        return float(self.vector.norm())

    def unit(self) -> torch.Tensor:
        """(d,) unit direction (for a (T, d) tensor: of its sum over positions)."""
        v = self.vector if self.vector.ndim == 1 else self.vector.sum(0)
        return v / v.norm()

    def random_control(self, seed: int = 0) -> SteeringVector:
        """A random direction of the same shape and norm at the same site: the control shown
        beside every steering result."""
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(self.vector.shape, generator=gen)
        return SteeringVector(
            noise * (self.norm / float(noise.norm())),
            self.site,
            "random",
            {"control_for": self.method, "seed": seed},
        )

    def save(self, path: str | Path) -> Path:
        """Write `path` (.safetensors) and its `.json` sidecar; returns the tensor's path."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"vector": self.vector.contiguous()}, str(path))
        meta = {
            "format_version": FORMAT_VERSION,
            "site": self.site,
            "method": self.method,
            "shape": list(self.vector.shape),
            "norm": self.norm,
            "provenance": self.provenance,
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(meta, fh, indent=2, default=str)
        os.replace(tmp, path.with_suffix(".json"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> SteeringVector:
        """Read a vector saved by `save` (never unpickles)."""
        from safetensors.torch import load_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        meta_path = path.with_suffix(".json")
        if not path.is_file() or not meta_path.is_file():
            raise InputError(
                f"no steering vector at {str(path)!r}: expected {path.name} and {meta_path.name}"
            )
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(path))
        if "vector" not in tensors:
            raise InputError(f"{str(path)!r} holds {sorted(tensors)}, not a 'vector' tensor")
        return cls(tensors["vector"], meta["site"], meta["method"], meta.get("provenance", {}))
