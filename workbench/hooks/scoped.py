"""Scoped forward hooks: installed for one call, removed in `finally`, never touching others'.

Every site is a module (a TransformerLens `HookPoint` on transformers, any submodule on plain
models), so one mechanism, `register_forward_hook`, serves capture and intervention alike. Only
the handles this module created are removed; hooks someone else added stay where they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

#: A forward hook: (module, inputs, output) -> replacement output or None.
ForwardHook = Callable[[nn.Module, Any, Any], Any]


class StopForward(Exception):  # noqa: N818 - control flow, not an error
    """Raised by a capture hook to end the forward pass after the deepest requested site."""


@contextmanager
def scoped_hooks(hooks: Sequence[tuple[nn.Module, ForwardHook]]) -> Iterator[None]:
    """Install `hooks` for the duration of the block; remove exactly these on exit or error."""
    handles = []
    try:
        for module, fn in hooks:
            handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


def primary_tensor(output: Any) -> torch.Tensor:
    """The tensor a site produces: the output itself, or the first element of a tuple output."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(
        f"site output is {type(output).__name__}, not a tensor or a tuple starting with one"
    )


def replace_primary(output: Any, tensor: torch.Tensor) -> Any:
    """`output` with its primary tensor replaced by `tensor` (tuples keep their other entries)."""
    if isinstance(output, torch.Tensor):
        return tensor
    return type(output)([tensor, *output[1:]])
