"""`intervene`: scoped write hooks that edit activations at sites during a forward pass or
generation.

Edits are small frozen dataclasses; each maps a site's output tensor (batch, pos, ...) to a
replacement. Steering, codebook bottlenecks, SAE splicing and ablations are all edits: none of
them installs hooks of its own. The handle's lock is held for the whole `with` block, so another
thread (another web session) never computes under someone else's edits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.errors import InputError
from workbench.hooks.scoped import primary_tensor, replace_primary, scoped_hooks
from workbench.models.handle import ModelHandle
from workbench.sites.names import expand_sites


@dataclass(frozen=True)
class Edit:
    """Base class: an edit of the output at `site` (a name or a pattern)."""

    site: str

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _like(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype)


def _check_width(name: str, v: torch.Tensor, x: torch.Tensor) -> None:
    if v.shape[-1] != x.shape[-1]:
        raise InputError(
            f"{name} has width {v.shape[-1]} but the site's last dim is {x.shape[-1]} "
            f"(site output shape {tuple(x.shape)})"
        )


@dataclass(frozen=True)
class Add(Edit):
    """x + coeff * vector (vector broadcast over the leading dims)."""

    vector: torch.Tensor
    coeff: float = 1.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        _check_width("vector", self.vector, x)
        return x + self.coeff * _like(self.vector, x)


@dataclass(frozen=True)
class Replace(Edit):
    """The output replaced by `value` (broadcast to the output's shape)."""

    value: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return _like(self.value, x).expand_as(x).clone()
        except RuntimeError as exc:
            raise InputError(
                f"replacement of shape {tuple(self.value.shape)} does not broadcast to "
                f"the site's shape {tuple(x.shape)}"
            ) from exc


@dataclass(frozen=True)
class ZeroAblate(Edit):
    """The output set to zero."""

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


@dataclass(frozen=True)
class MeanAblate(Edit):
    """The output replaced by a mean activation (width,), e.g. from a store's statistics."""

    mean: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        _check_width("mean", self.mean, x)
        return _like(self.mean, x).expand_as(x).clone()


@dataclass(frozen=True)
class ProjectOut(Edit):
    """Remove the component along `direction`: x - (x . u) u with u = direction / |direction|."""

    direction: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        _check_width("direction", self.direction, x)
        u = _like(self.direction, x)
        norm = u.norm()
        if float(norm) == 0.0:
            raise InputError("ProjectOut direction is the zero vector")
        u = u / norm
        return x - (x @ u)[..., None] * u


@dataclass(frozen=True)
class Splice(Edit):
    """The output replaced by `module(output)` (an SAE reconstruction, a codebook bottleneck).

    The output is handed to the module on the module's device and in its floating dtype (an
    fp32 SAE spliced into a bf16 model on CUDA), and the result comes back in the output's
    device and dtype."""

    module: nn.Module

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        param = next(self.module.parameters(), None)
        if param is not None and param.is_floating_point():
            out = self.module(x.to(device=param.device, dtype=param.dtype))
            out = out.to(device=x.device, dtype=x.dtype)
        else:
            out = self.module(x)
        if out.shape != x.shape:
            raise InputError(
                f"spliced module returned shape {tuple(out.shape)}, expected {tuple(x.shape)}"
            )
        return out


@dataclass(frozen=True)
class Apply(Edit):
    """The output replaced by `fn(output)` for any tensor -> tensor function of the same shape."""

    fn: Callable[[torch.Tensor], torch.Tensor]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fn(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise InputError(f"edit function must return a tensor of shape {tuple(x.shape)}")
        return out


def _make_hook(edit: Edit) -> Callable[[nn.Module, Any, Any], Any]:
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        return replace_primary(output, edit.apply(primary_tensor(output)))

    return hook


@contextmanager
def intervene(handle: ModelHandle, edits: Edit | Sequence[Edit]) -> Iterator[ModelHandle]:
    """Apply `edits` to every forward pass (and generation step) run inside the block.

    Edits at the same site compose in the order given. The model is exactly as before once the
    block exits, normally or by an exception. Captures run inside the block see edited values.
    """
    edits = [edits] if isinstance(edits, Edit) else list(edits)
    with handle.lock:
        hooks = []
        for edit in edits:
            if not isinstance(edit, Edit):
                raise InputError(
                    f"not an edit: {edit!r}; use Add, Replace, ZeroAblate, MeanAblate, "
                    "ProjectOut, Splice or Apply"
                )
            for site in expand_sites(handle.sites(), edit.site):
                hooks.append((handle.site_modules[site], _make_hook(edit)))
        with scoped_hooks(hooks):
            yield handle
