"""Model entries of a batch spec -> concrete checkpoints, their content fingerprints, and loading.

A model entry is a zoo name (its checkpoint series, built on demand), a checkpoint-series folder,
or anything `load_model` reads (short name, HF folder, cached hub name) as one checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InputError


@dataclass(frozen=True)
class Checkpoint:
    """One model state to capture from.

    Attributes:
        model: the spec's model text (`toy-lm`, `runs/series`, `minilm`).
        step: training step within the series, or None for a single model.
        fingerprint: sha256 of the weight files (of the state dict when there are none).
    """

    model: str
    step: int | None
    fingerprint: str

    @property
    def label(self) -> str:
        return self.model if self.step is None else f"{self.model}@{self.step}"


def _series(model: str, zoo_root: str | None):
    """The CheckpointSeries of `model` if it is a zoo name or a series folder, else None."""
    from workbench.models.series import CheckpointSeries, looks_like_series
    from workbench.zoo import load_series, recipes

    if model in recipes() and not Path(model).exists():
        return load_series(model, zoo_root)
    if Path(model).is_dir() and looks_like_series(Path(model)):
        return CheckpointSeries(model)
    return None


def select_steps(steps: list[int], selection: Any) -> list[int]:
    """The steps of a series that a spec's `steps` selection names, in training order."""
    if selection == "all":
        return list(steps)
    if selection in ("last", "first"):
        return [steps[-1] if selection == "last" else steps[0]]
    if isinstance(selection, dict):
        every = int(selection["every"])
        chosen = steps[::every]
        return chosen if chosen[-1] == steps[-1] else [*chosen, steps[-1]]
    picked: set[int] = set()
    for item in selection:
        step = steps[-1] if item == "last" else steps[0] if item == "first" else item
        if step not in steps:
            raise InputError(f"the series has no step {step}; it has {steps}")
        picked.add(step)
    return sorted(picked)


def resolve_checkpoints(model: str, selection: Any, zoo_root: str | None) -> list[Checkpoint]:
    """The checkpoints a model entry stands for, fingerprinted by content."""
    from workbench.models.weights import hash_files, weight_files

    series = _series(model, zoo_root)
    if series is None:
        if selection != "all":
            raise InputError(f"{model!r} is a single model, not a checkpoint series: drop `steps`")
        handle = load_checkpoint(Checkpoint(model, None, ""), zoo_root, device="cpu", dtype="auto")
        return [Checkpoint(model, None, handle.weights_hash)]
    out = []
    for step in select_steps(series.steps, selection):
        location = series.location(step)
        files = weight_files(location) if location.is_dir() else [location]
        out.append(Checkpoint(model, step, hash_files(files)))
    return out


def load_checkpoint(checkpoint: Checkpoint, zoo_root: str | None, device: str, dtype: str):
    """A ModelHandle of `checkpoint` (never downloads: hub names come from the local cache)."""
    from workbench.models import load_model

    if checkpoint.step is None:
        return load_model(checkpoint.model, device=device, dtype=dtype)
    series = _series(checkpoint.model, zoo_root)
    if series is None:
        raise InputError(f"{checkpoint.model!r} is not a checkpoint series")
    return series.load(checkpoint.step, device=device, dtype=dtype)
