"""Apply a steering vector through the core's intervention API.

Modes (all on the site's output x, per row and position):
- "add": x + c * v. With `scale` given, v is replaced by scale * v/|v| (e.g. scale = the site's
  typical residual norm, so c is in units of that norm).
- "project-out": x - (x . u) u with u = v/|v| (directional ablation); c is ignored.
- "cap": the component along u is capped at c: x + (min(x . u, c) - x . u) u.

Where (positions are absolute in the left-padded batch, so padding never shifts them):
- "all": every position;
- "after": positions at or after the (padded) prompt length, i.e. the generated tokens (CAA,
  Rimsky et al. 2023, adds to every position after the instruction);
- "front": ActAdd (Turner et al. 2023): a (T, d) tensor added to the first T real tokens of each
  row (a (d,) vector: to the first real token only).

Under the KV cache each generation step sees one position; `_Positions` keeps the offset so that
cached and uncached generation edit exactly the same positions (tested: identical tokens).
The coefficient may be one number or one per batch row (how sweeps run many coefficients in one
batched pass).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from analyses.steering.vectors import SteeringVector
from workbench.errors import InputError
from workbench.hooks.intervene import Apply, intervene
from workbench.models.handle import Batch, ModelHandle

WHERE = ("all", "after", "front")
MODES = ("add", "project-out", "cap")


@dataclass
class _Positions:
    """Start position of each call at a site: 0 for a full pass; the running offset for the
    one-token steps of cached generation."""

    cached: bool = False
    offset: int = 0

    def start(self, length: int) -> int:
        start = self.offset if (self.cached and length == 1) else 0
        self.offset = start + length
        return start


@dataclass
class SteeringEdit:
    """The function an `Apply` edit calls: steer one site's output tensor."""

    vector: SteeringVector
    coeff: torch.Tensor  # () or (batch,)
    where: str = "all"
    mode: str = "add"
    scale: float | None = None
    prompt_length: int | None = None
    pad: torch.Tensor | None = None  # (batch,) left-padding of each row (front)
    positions: _Positions | None = None

    def __post_init__(self) -> None:
        if self.where not in WHERE:
            raise InputError(f"where={self.where!r}; valid: {', '.join(WHERE)}")
        if self.mode not in MODES:
            raise InputError(f"mode={self.mode!r}; valid: {', '.join(MODES)}")
        if self.where == "after" and self.prompt_length is None:
            raise InputError("where='after' needs the prompt: use analyses.steering.generate")
        if self.vector.vector.ndim == 2 and (self.where != "front" or self.mode != "add"):
            raise InputError(
                "a per-position (T, d) vector (ActAdd) is added at the front: use "
                "where='front', mode='add'"
            )
        if self.positions is None:
            self.positions = _Positions()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        v, u = self._vectors(x)
        coeff: torch.Tensor | float = (
            float(self.coeff) if self.coeff.ndim == 0 else self._row_coeff(x)
        )
        if self.mode == "add" and v.ndim == 2:
            return x + coeff * self._front_tensor(v, x)
        mask = self._mask(x)
        if mask is None:  # no position of this call is steered (the prompt, under "after")
            return x
        if self.mode == "add":
            delta = coeff * (u * self.scale if self.scale is not None else v)
        else:
            along = x @ u
            if self.mode == "project-out":
                delta = -along[..., None] * u
            else:  # cap
                limit = coeff if isinstance(coeff, float) else coeff.squeeze(-1)
                delta = (torch.clamp(along, max=limit) - along)[..., None] * u
        return x + delta if isinstance(mask, float) else x + delta * mask

    def _vectors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The vector and its unit direction on x's device and dtype (converted once)."""
        key = (x.device, x.dtype)
        if getattr(self, "_cache_key", None) != key:
            v = self.vector.vector.to(device=x.device, dtype=x.dtype)
            if v.shape[-1] != x.shape[-1]:
                raise InputError(
                    f"steering vector has width {v.shape[-1]} but site {self.vector.site!r} "
                    f"has width {x.shape[-1]} (output shape {tuple(x.shape)})"
                )
            self._cache = (v, v / v.norm() if v.ndim == 1 else v)
            self._cache_key = key
        return self._cache

    def _row_coeff(self, x: torch.Tensor) -> torch.Tensor:
        if self.coeff.shape[0] != x.shape[0]:
            raise InputError(f"{self.coeff.shape[0]} coefficients for a batch of {x.shape[0]} rows")
        return self.coeff.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    def _mask(self, x: torch.Tensor) -> torch.Tensor | float | None:
        """1.0 (every position), None (no position) or a (batch|1, pos, 1) 0/1 tensor."""
        if self.where == "all":
            return 1.0
        if x.ndim < 3:
            raise InputError(
                f"where={self.where!r} needs a sequence site; {self.vector.site!r} has output "
                f"shape {tuple(x.shape)} (use where='all')"
            )
        assert self.positions is not None
        length = int(x.shape[1])
        start = self.positions.start(length)
        if self.where == "after":
            assert self.prompt_length is not None
            if start >= self.prompt_length:
                return 1.0
            if start + length <= self.prompt_length:
                return None
            pos = torch.arange(start, start + length, device=x.device)
            return (pos >= self.prompt_length).to(x.dtype)[None, :, None]
        pos = torch.arange(start, start + length, device=x.device)
        first = self._pad(x)[:, None]  # front with a (d,) vector: the first real token
        return (pos[None, :] == first).to(x.dtype)[..., None]

    def _positions_of(self, x: torch.Tensor) -> torch.Tensor:
        """(pos,) absolute positions of this call's sequence axis."""
        assert self.positions is not None
        start = self.positions.start(int(x.shape[1]))
        return torch.arange(start, start + x.shape[1], device=x.device)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is None:
            return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        return self.pad.to(x.device)

    def _front_tensor(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(batch, pos, d): v[j] at absolute position pad_b + j, zero elsewhere."""
        if x.ndim < 3:
            raise InputError(f"ActAdd needs a sequence site, got output shape {tuple(x.shape)}")
        j = self._positions_of(x)[None, :] - self._pad(x)[:, None]  # (batch, pos)
        inside = (j >= 0) & (j < v.shape[0])
        return v[j.clamp(0, v.shape[0] - 1)] * inside[..., None].to(x.dtype)


def _coeff(coeff: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(coeff, dtype=torch.float32)
    if tensor.ndim > 1 or not bool(torch.isfinite(tensor).all()):
        raise InputError(f"coefficient must be a finite number or one per row, got {coeff!r}")
    return tensor


@contextmanager
def steer(
    handle: ModelHandle,
    vectors: SteeringVector | Sequence[SteeringVector],
    coeff: float | Sequence[float] | torch.Tensor = 1.0,
    *,
    where: str = "all",
    mode: str = "add",
    scale: float | None = None,
    batch: Batch | None = None,
    cached: bool = False,
) -> Iterator[ModelHandle]:
    """Steer every forward pass inside the block; the model is exactly as before afterwards.

    `batch` (the prepared prompt batch) is needed for where="after"/"front" (prompt length and
    padding); `cached` tells that the passes are KV-cached generation steps.
    """
    vectors = [vectors] if isinstance(vectors, SteeringVector) else list(vectors)
    prompt_length = pad = None
    if batch is not None and batch.attention_mask is not None:
        prompt_length = int(batch.attention_mask.shape[1])
        pad = prompt_length - batch.attention_mask.sum(1)
    known = set(handle.sites())
    edits = []
    for vector in vectors:
        if vector.site not in known:
            from workbench.errors import UnknownSiteError, closest

            raise UnknownSiteError(
                f"model has no site {vector.site!r}; closest: "
                f"{', '.join(closest(vector.site, sorted(known)))}"
            )
        fn = SteeringEdit(
            vector, _coeff(coeff), where, mode, scale, prompt_length, pad, _Positions(cached)
        )
        edits.append(Apply(vector.site, fn))
    with intervene(handle, edits):
        yield handle


def generate(
    handle: ModelHandle,
    prompts: Any,
    vectors: SteeringVector | Sequence[SteeringVector] | None,
    coeff: float | Sequence[float] | torch.Tensor = 1.0,
    *,
    where: str = "after",
    mode: str = "add",
    scale: float | None = None,
    max_new_tokens: int = 12,
    use_cache: bool = True,
) -> tuple[Batch, torch.Tensor]:
    """Greedy generation under steering (None: unsteered). Returns the prompt batch and the
    (batch, prompt + max_new_tokens) token ids."""
    batch = handle.prepare(prompts)
    if vectors is None:
        return batch, handle.generate(batch, max_new_tokens=max_new_tokens, use_cache=use_cache)
    with steer(
        handle, vectors, coeff, where=where, mode=mode, scale=scale, batch=batch, cached=use_cache
    ):
        tokens = handle.generate(batch, max_new_tokens=max_new_tokens, use_cache=use_cache)
    return batch, tokens
