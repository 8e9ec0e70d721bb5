"""`capture`: read activations at sites during one forward pass, with scoped hooks.

Inside each hook the requested positions are gathered and cast to the requested dtype before
anything is copied, so memory is proportional to what was asked for, not to the whole
activation. The forward pass stops right after the deepest requested site has fired.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workbench.errors import InputError, NonFiniteActivationError
from workbench.hooks.scoped import StopForward, primary_tensor, scoped_hooks
from workbench.models.handle import Batch, ModelHandle
from workbench.sites.names import expand_sites
from workbench.sites.positions import PositionSpec, Selection, select


@dataclass
class Activations:
    """Captured activations.

    In row mode (positions given) `acts[site]` is (rows, *row_shape): one row per selected token
    (language models) or per example (plain modules); `example_index`, `position` and
    `token_ids` are (rows,). In raw mode (positions=None) `acts[site]` is the site's output as
    produced, batch first, and the row fields are None.
    """

    acts: dict[str, torch.Tensor]
    example_index: torch.Tensor | None = None
    position: torch.Tensor | None = None
    token_ids: torch.Tensor | None = None
    calls: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, site: str) -> torch.Tensor:
        return self.acts[site]

    @property
    def sites(self) -> list[str]:
        return list(self.acts)

    def numpy(self, site: str) -> np.ndarray:
        tensor = self.acts[site]
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.cpu().numpy()


def capture(
    handle: ModelHandle,
    sites: str | Sequence[str],
    inputs: Any,
    *,
    positions: PositionSpec | None = "auto",
    dtype: torch.dtype | None = torch.float32,
    stop_early: bool = True,
    check_finite: bool = True,
    max_length: int | None = None,
) -> Activations:
    """Run `inputs` through the model and return the activations at `sites`.

    Args:
        sites: names or patterns (`blocks.*.hook_resid_post`), see `workbench.sites.names`.
        inputs: anything `ModelHandle.prepare` accepts (texts are left-padded).
        positions: "all" real tokens, "last" real token, an int or slice over the unpadded
            sequence, a (batch, pos) bool mask, or None for the raw output. "auto": "all" for
            language models, None for plain modules.
        dtype: cast inside the hook (None keeps the model's dtype).
        stop_early: end the forward pass after the deepest requested site.
        check_finite: raise NonFiniteActivationError naming site and position on NaN/Inf.
    """
    names = expand_sites(handle.sites(), sites)
    batch = handle.prepare(inputs, max_length=max_length)
    if positions == "auto":
        positions = "all" if batch.is_sequence else None
    selection = _selection(batch, positions)
    results: dict[str, torch.Tensor] = {}
    calls = dict.fromkeys(names, 0)
    expected = _expected_calls(handle, names) if stop_early else None

    def make_hook(site: str):
        def hook(module: Any, args: Any, output: Any) -> None:
            calls[site] += 1
            # a module called again in the same pass (a shared nn.ReLU) gets `site#1`, `site#2`...
            key = site if calls[site] == 1 else f"{site}#{calls[site] - 1}"
            results[key] = _take(site, primary_tensor(output), selection, dtype, check_finite)
            if expected is not None and all(calls[s] >= expected[s] for s in names):
                raise StopForward

        return hook

    with handle.lock:
        hooks = [(handle.site_modules[s], make_hook(s)) for s in names]
        with scoped_hooks(hooks), contextlib.suppress(StopForward):
            handle.run(batch)
    missing = [s for s in names if calls[s] == 0]
    if missing:
        raise InputError(
            f"sites {missing} did not run in this forward pass; nothing was captured there"
        )
    if expected is None:
        handle._site_calls.update(calls)
    return _package(results, calls, selection, batch)


def _expected_calls(handle: ModelHandle, names: list[str]) -> dict[str, int] | None:
    """How often each site fires per forward, learnt from an earlier full pass (None: unknown).

    TransformerLens hook points fire once per pass; plain modules may be reused (one `nn.ReLU`
    after every layer), so the first capture on them runs the whole pass and counts calls.
    """
    if handle.is_language_model:
        return dict.fromkeys(names, 1)
    known = handle._site_calls
    if all(s in known for s in names):
        return {s: known[s] for s in names}
    return None


def _selection(batch: Batch, positions: PositionSpec | None) -> Selection | None:
    if positions is None:
        return None
    if batch.attention_mask is None:
        raise InputError(
            f"positions={positions!r} needs a token sequence; plain modules capture whole outputs "
            "(positions=None), one row per example"
        )
    return select(batch.attention_mask, positions)


def _take(
    site: str,
    tensor: torch.Tensor,
    selection: Selection | None,
    dtype: torch.dtype | None,
    check_finite: bool,
) -> torch.Tensor:
    """Gather the selected rows, cast, detach (the copy happens here and only here)."""
    tensor = tensor.detach()
    if selection is not None:
        expected = tuple(selection.shape)
        if tensor.ndim < 2 or tuple(tensor.shape[:2]) != expected:
            raise InputError(
                f"site {site!r} output has shape {tuple(tensor.shape)}, not (batch, pos, ...) = "
                f"{expected}...; capture it with positions=None"
            )
        out = tensor[selection.batch_index, selection.pos_index]
        out = out.to(dtype) if dtype is not None else out
    else:
        out = tensor.to(dtype) if dtype is not None and dtype != tensor.dtype else tensor.clone()
    if check_finite and out.is_floating_point():
        _check_finite(site, out, selection)
    return out


def _check_finite(site: str, out: torch.Tensor, selection: Selection | None) -> None:
    # Fast path: NaN or Inf anywhere makes the sum non-finite; a sum that overflows from large
    # finite values merely falls through to the full scan, so nothing bad is ever missed.
    if bool(torch.isfinite(out.sum(dtype=torch.float32))):
        return
    finite = torch.isfinite(out)
    if bool(finite.all()):
        return
    bad = (~finite).nonzero()[0].tolist()
    value = out[tuple(bad)].item()
    if selection is not None:
        row = bad[0]
        where = (
            f"example {int(selection.batch_index[row])}, position {int(selection.position[row])}, "
            f"index {bad[1:]}"
        )
    else:
        where = f"example {bad[0]}, index {bad[1:]}"
    raise NonFiniteActivationError(f"non-finite activation {value} at site {site!r}, {where}")


def _package(
    results: dict[str, torch.Tensor],
    calls: dict[str, int],
    selection: Selection | None,
    batch: Batch,
) -> Activations:
    if selection is None:
        return Activations(acts=results, calls=calls)
    assert batch.input_ids is not None  # a selection exists only for token sequences
    token_ids = batch.input_ids[selection.batch_index, selection.pos_index]
    return Activations(
        acts=results,
        example_index=selection.batch_index,
        position=selection.position,
        token_ids=token_ids,
        calls=calls,
    )
