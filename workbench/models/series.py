"""Checkpoint series: a folder of checkpoints ordered by training step, loaded lazily.

Layouts recognised (the way Pythia publishes revisions `step1000`, and the HF Trainer writes
`checkpoint-1000`):

    series/step0/config.json + model.safetensors         (Hugging Face folders)
    series/checkpoint-1000/...                           (Hugging Face folders)
    series/step_000100.safetensors                       (state dicts of a plain module or of a
    series/config.json                                    TransformerLens-native config beside them)

State dicts of plain modules need `build`, a function returning a fresh module to load into.
A hub repository's `step<N>` revisions are a series too: `workbench.models.hub.HubSeries`, a
subclass with the same interface.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from workbench.devices import resolve_device, resolve_dtype
from workbench.errors import InputError, UnknownModelError
from workbench.models.boot import _boot_native, _boot_transformers, wrap_module
from workbench.models.handle import ModelHandle
from workbench.models.weights import load_state_dict

_DIR_STEP = re.compile(r"^(?:step|checkpoint|ckpt)[-_]?(\d+)$")
_FILE_STEP = re.compile(
    r"^(?:step|checkpoint|ckpt|model[-_]step)[-_]?(\d+)\.(?:safetensors|pt|pth|bin)$"
)


def _scan(folder: Path) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for child in folder.iterdir():
        match = _DIR_STEP.match(child.name) if child.is_dir() else _FILE_STEP.match(child.name)
        if match is None:
            continue
        step = int(match.group(1))
        if step in found:
            raise InputError(
                f"checkpoint series {str(folder)!r} has two checkpoints for step {step}: "
                f"{found[step].name} and {child.name}"
            )
        found[step] = child
    return found


def looks_like_series(folder: Path) -> bool:
    """True when `folder` holds at least one checkpoint named by step."""
    return folder.is_dir() and bool(_scan(folder))


class CheckpointSeries:
    """An ordered, lazily loaded list of checkpoints (step -> location).

    Iterating yields `ModelHandle`s one at a time, so only one checkpoint is in memory at once
    as long as the caller drops the previous handle.
    """

    def __init__(
        self,
        folder: str | Path,
        build: Callable[[], nn.Module] | None = None,
        name: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UnknownModelError(f"checkpoint series folder {str(self.folder)!r} does not exist")
        self._locations = dict(sorted(_scan(self.folder).items()))
        if not self._locations:
            raise UnknownModelError(
                f"no checkpoints in {str(self.folder)!r}: expected sub-folders named step<N> or "
                "checkpoint-<N>, or files step_<N>.safetensors"
            )
        self.build = build
        self.name = name or self.folder.name

    @property
    def steps(self) -> list[int]:
        """Training steps, ascending."""
        return list(self._index)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def _index(self) -> Mapping[int, object]:
        """step -> where that checkpoint is found, ascending (a subclass's own record of it)."""
        return self._locations

    def _source(self, step: int, location: Path) -> str:
        """What a handle of `step` records as its source (here the checkpoint's path)."""
        return str(location)

    def _check_step(self, step: int) -> None:
        """Raise `InputError` (naming the steps) when the series has no checkpoint at `step`."""
        self.location(step)

    def location(self, step: int) -> Path:
        if step not in self._locations:
            raise InputError(
                f"no checkpoint at step {step} in {str(self.folder)!r}; steps: {self.steps}"
            )
        return self._locations[step]

    def resolve_step(self, text: str | int) -> int:
        """`"last"`, `"first"` or a step number (as text or int) -> a step of this series."""
        if text in ("last", "final"):
            return self.steps[-1]
        if text == "first":
            return self.steps[0]
        try:
            step = int(text)
        except ValueError:
            raise InputError(
                f"checkpoint step {text!r} is not a number, 'first' or 'last'"
            ) from None
        self._check_step(step)
        return step

    def load(
        self,
        step: int,
        device: str | torch.device | None = "auto",
        dtype: str | torch.dtype | None = "auto",
    ) -> ModelHandle:
        """Load the checkpoint at `step` as a handle (its `info.checkpoint_step` is set)."""
        location = self.location(step)
        name = f"{self.name}@{step}"
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        if location.is_dir():
            if not (location / "config.json").is_file():
                raise UnknownModelError(
                    f"checkpoint folder {str(location)!r} has no config.json (a Hugging Face folder)"
                )
            return _boot_transformers(
                str(location),
                source=self._source(step, location),
                name=name,
                device=dev,
                dtype=dt,
                trust_remote_code=False,
                location=location,
                checkpoint_step=step,
            )
        state = load_state_dict(location)
        if self.build is not None:
            module = self.build()
            module.load_state_dict(state)
            return wrap_module(
                module, name=name, device=dev, dtype=dt, location=location, checkpoint_step=step
            )
        native_config = self.folder / "config.json"
        if native_config.is_file():
            config = json.loads(native_config.read_text())
            return _boot_native(
                config,
                source=str(self.folder),
                name=name,
                device=dev,
                dtype=dt,
                location=location,
                state_dict=state,
                checkpoint_step=step,
            )
        raise InputError(
            f"{str(location)!r} is a bare state dict: pass build=<function returning the module> to "
            "CheckpointSeries, or put a TransformerLens-native config.json beside the checkpoints"
        )

    def __iter__(self) -> Iterator[ModelHandle]:
        for step in self.steps:
            yield self.load(step)
