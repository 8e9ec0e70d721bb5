"""The one checkpoint loop: walk a checkpoint series in training order, one loaded model at a time.

    for step, handle in iter_checkpoints("toy-lm", steps=[0, "last"], device="cpu"):
        ...  # capture, probe, measure
        del handle  # see "Memory" below

A series is a `CheckpointSeries`, a zoo name (its series, built on demand), a folder of
step-named checkpoints (`step<N>/`, `checkpoint-<N>/`, `step_<N>.safetensors`: see
`workbench.models.series`) or a Hugging Face hub repository with `step<N>` revisions
(`EleutherAI/pythia-160m`: a `HubSeries`, see `workbench.models.hub`; from the local cache, or
with `allow_download=True` from the Hub). Steps are ints, their text, "first" or "last"; every one is checked
before anything loads, and they come in ascending order, each once.

Memory: the iterator drops its reference to a handle when the caller asks for the next one, then
collects garbage (a model's modules can hold reference cycles) and empties the CUDA cache before
loading the next checkpoint, so at most one checkpoint is in memory. A `for` loop rebinds its
variable only after the next checkpoint has loaded, so end the loop body with `del handle` (and
keep no other reference) for that bound to hold.

`capture_stores` is the loop's most common use: one activation store per checkpoint.
"""

from __future__ import annotations

import gc
import operator
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from workbench import console
from workbench.errors import InputError
from workbench.models.handle import ModelHandle
from workbench.models.hub import HubSeries, find_hub_series, looks_like_hub_name
from workbench.models.series import CheckpointSeries, looks_like_series

if TYPE_CHECKING:
    from workbench.store import ActivationStore

Step = int | str


def find_series(
    model: Any, zoo_root: str | Path | None = None, *, allow_download: bool = False
) -> CheckpointSeries | None:
    """The `CheckpointSeries` that `model` names, or None when it names none.

    `model`: a `CheckpointSeries` (returned as is), a zoo name that is not also a local path (its
    series, built under `zoo_root` first if needed), a folder holding step-named checkpoints, or
    a hub repository id that is not a local path and has `step<N>` revisions in the Hugging Face
    cache (with `allow_download`: on the Hub): its `HubSeries`.
    """
    from workbench.zoo import load_series, recipes

    if isinstance(model, CheckpointSeries):
        return model
    if not isinstance(model, (str, Path)):
        return None
    if isinstance(model, str) and model in recipes() and not Path(model).exists():
        return load_series(model, zoo_root)
    if looks_like_series(Path(model)):
        return CheckpointSeries(model)
    if isinstance(model, str) and not Path(model).exists():
        return find_hub_series(model, allow_download=allow_download)
    return None


def as_series(
    series: Any, zoo_root: str | Path | None = None, *, allow_download: bool = False
) -> CheckpointSeries:
    """`find_series`, raising `InputError` (naming the zoo's series, or a hub repository's
    revisions) when `series` names none."""
    from workbench.zoo import recipes

    found = find_series(series, zoo_root, allow_download=allow_download)
    if found is None:
        if isinstance(series, str) and looks_like_hub_name(series) and not Path(series).exists():
            return HubSeries(series, allow_download=allow_download)  # raises, naming revisions
        raise InputError(
            f"not a checkpoint series: {str(series)!r}; pass a CheckpointSeries, a zoo name "
            f"({', '.join(recipes())}), a folder of step<N>/ or checkpoint-<N>/ checkpoints, or "
            "a hub repository with step<N> revisions (EleutherAI/pythia-160m)"
        )
    return found


def resolve_steps(available: Sequence[int], wanted: Iterable[Step] | None = None) -> list[int]:
    """The steps of `available` (ascending) that `wanted` names, ascending and each once.

    `wanted`: ints, their text, "first" or "last" (alias "final"); None means every step.
    Raises `InputError` naming the bad step and the valid ones.
    """
    if wanted is None:
        return list(available)
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    chosen = set()
    for item in wanted:
        if item in ("first", "last", "final"):
            chosen.add(available[0] if item == "first" else available[-1])
            continue
        step = _as_int(item)
        if step is None or step not in available:
            raise InputError(
                f"the series has no step {item}; valid: first, last, "
                + ", ".join(map(str, available))
            )
        chosen.add(step)
    return sorted(chosen)


def _as_int(item: Any) -> int | None:
    """`item` as a step number (an int, a numpy integer or digits), else None (1.5 is none)."""
    if isinstance(item, str):
        return int(item) if item.strip().isdigit() else None
    try:
        return operator.index(item)
    except TypeError:
        return None


def free_memory() -> None:
    """Collect garbage and return cached CUDA blocks, so a dropped model's memory is released."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def iter_checkpoints(
    series: Any,
    steps: Iterable[Step] | None = None,
    *,
    zoo_root: str | Path | None = None,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = "auto",
    allow_download: bool = False,
) -> Iterator[tuple[int, ModelHandle]]:
    """(step, handle) for each chosen checkpoint of `series`, in ascending step order, loaded
    one at a time on `device` with `dtype` ("auto": CUDA if available; bf16 there, fp32 on CPU).

    `series` and `steps`: see the module docstring (steps None: every checkpoint). The handle's
    `info.checkpoint_step` is its step. Free the handle before the next (module docstring).
    `allow_download`: a hub repository's steps as the Hub lists them, each fetched when loaded.
    """
    resolved = as_series(series, zoo_root, allow_download=allow_download)
    chosen = resolve_steps(resolved.steps, steps)
    for step in console.track(chosen, unit="checkpoint"):
        handle = resolved.load(step, device=device, dtype=dtype)
        try:
            yield step, handle
        finally:
            del handle
            free_memory()


def capture_stores(
    series: Any,
    *,
    sites: str | Sequence[str],
    examples: Sequence[Any],
    out: str | Path,
    steps: Iterable[Step] | None = None,
    prefix: str = "step",
    zoo_root: str | Path | None = None,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = "auto",
    allow_download: bool = False,
    **capture_kwargs: Any,
) -> dict[int, ActivationStore]:
    """Capture `examples` at `sites` for each chosen checkpoint into `out/<prefix><step>/`;
    returns step -> `ActivationStore`, ascending. Resumable: a complete store is reused, an
    interrupted one resumed. `allow_download`: see `iter_checkpoints`. `capture_kwargs` go to `capture_to_store` (dataset, positions,
    max_length, ...; `progress` defaults to False)."""
    from workbench.store.capture import capture_to_store

    capture_kwargs.setdefault("progress", False)
    stores: dict[int, ActivationStore] = {}
    for step, handle in iter_checkpoints(
        series, steps, zoo_root=zoo_root, device=device, dtype=dtype, allow_download=allow_download
    ):
        target = Path(out) / f"{prefix}{step}"
        stores[step] = capture_to_store(handle, sites, examples, target, **capture_kwargs)
        del handle
    return stores
