"""Model entries of a batch spec -> concrete checkpoints, their content fingerprints, and loading.

A model entry is a zoo name (its checkpoint series, built on demand), a checkpoint-series folder,
a hub repository whose `step<N>` revisions are in the local Hugging Face cache (`HubSeries`), or
anything `load_model` reads (short name, HF folder, cached hub name or `ORG/NAME@REV`) as one
checkpoint. Series and their steps are resolved by the core checkpoint loop
(`workbench.analysis.checkpoints`). A batch never downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.analysis.checkpoints import find_series, resolve_steps
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


def select_steps(steps: list[int], selection: Any) -> list[int]:
    """The steps of a series that a spec's `steps` selection names, in training order:
    "all", {"every": N} (every N-th step and the last), or what `resolve_steps` reads ("last",
    "first", or a list of steps and those words)."""
    if selection == "all":
        return list(steps)
    if isinstance(selection, dict):
        every = int(selection["every"])
        chosen = steps[::every]
        return chosen if chosen[-1] == steps[-1] else [*chosen, steps[-1]]
    return resolve_steps(steps, selection)


def resolve_checkpoints(model: str, selection: Any, zoo_root: str | None) -> list[Checkpoint]:
    """The checkpoints a model entry stands for, fingerprinted by content."""
    from workbench.models.weights import hash_files, weight_files

    series = find_series(model, zoo_root)
    if series is None:
        if selection != "all":
            raise InputError(
                f"{model!r} is a single model, not a checkpoint series: drop `steps`"
                + _hub_revisions_note(model)
            )
        handle = load_checkpoint(Checkpoint(model, None, ""), zoo_root, device="cpu", dtype="auto")
        return [Checkpoint(model, None, handle.weights_hash)]
    out = []
    for step in select_steps(series.steps, selection):
        location = series.location(step)
        files = weight_files(location) if location.is_dir() else [location]
        out.append(Checkpoint(model, step, hash_files(_readable(files, model, step))))
    return out


def _readable(files: list[Path], model: str, step: int) -> list[Path]:
    """`files`, each checked to be there: a hub snapshot's files are links into `blobs/`, and a
    link whose blob is gone (a half download) is refused here rather than failing mid-hash.
    The paths stay the links (their names are part of the fingerprint); reading follows them."""
    for path in files:
        if not path.resolve().is_file():
            raise InputError(
                f"{model}@{step}: weight file {str(path)!r} is missing"
                + (f" (a link to {str(path.resolve())!r})" if path.is_symlink() else "")
                + "; re-fetch or rebuild that checkpoint"
            )
    return files


def _hub_revisions_note(model: str) -> str:
    """For a hub repository in the cache without step<N> revisions: its cached revisions."""
    from workbench.models.hub import describe_cached, looks_like_hub_name, split_revision

    repo_id = split_revision(model)[0] if "@" in model and not model.endswith("@") else model
    if not looks_like_hub_name(repo_id) or Path(repo_id).exists():
        return ""
    cached = describe_cached(repo_id)
    if cached is None:
        return ""
    return (
        f" (hub repository {repo_id!r} has no step<N> revisions in the Hugging Face cache; "
        f"cached revisions: {cached})"
    )


def load_checkpoint(checkpoint: Checkpoint, zoo_root: str | None, device: str, dtype: str):
    """A ModelHandle of `checkpoint` (never downloads: hub names come from the local cache)."""
    from workbench.models import load_model

    if checkpoint.step is None:
        return load_model(checkpoint.model, device=device, dtype=dtype)
    series = find_series(checkpoint.model, zoo_root)
    if series is None:
        raise InputError(f"{checkpoint.model!r} is not a checkpoint series")
    return series.load(checkpoint.step, device=device, dtype=dtype)
