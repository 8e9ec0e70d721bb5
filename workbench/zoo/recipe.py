"""A zoo recipe (how one zoo model is trained and judged), the registry recipes enter, and
Pythia's checkpoint schedule. The recipes are declared in `workbench.zoo.catalog`, which imports
no torch: their training code (`digits.py`, `lm.py`, `modadd.py`) is named by `Ref` and imported
only when a recipe trains or loads, so `workbench zoo list` answers at once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """How to make one zoo model.

    Attributes:
        name: zoo name (`toy-lm`).
        dataset: the dataset it is trained on.
        kind: "causal-lm" (checkpoints are Hugging Face folders) or "classifier" (checkpoints
            are safetensors state dicts of `module_factory()`).
        train: `(folder, quick) -> metrics` trains, writes the checkpoint series into `folder`
            (`step<N>/` or `step_<N>.safetensors`) and `metrics.json` (the curve), and returns
            the final metrics, e.g. {"train_loss": ..., "test_accuracy": ...}. `quick` shrinks
            the run for tests.
        metric: the headline metric's key in the returned dict.
        threshold: ("<=" | ">=", value) that shows the model learned (stated in its card).
        sites: default capture sites for the demo.
        module_factory: for classifiers, a function returning a fresh module.
        version: the recipe's version, written to `zoo.json` as `recipe_version` (1 when
            absent); a cached build of another version is rebuilt. Raise it whenever a change
            to the recipe changes what it trains.
    """

    name: str
    dataset: str
    kind: str
    train: Callable[[Path, bool], dict[str, float]]
    metric: str
    threshold: tuple[str, float]
    sites: str
    summary: str = ""
    module_factory: Callable[[], Any] | None = None
    version: int = 1

    def passed(self, metrics: dict[str, float]) -> bool:
        op, value = self.threshold
        got = metrics[self.metric]
        return got <= value if op == "<=" else got >= value


@dataclass(frozen=True)
class Ref:
    """A function named by "module:attribute", imported when first called (the zoo's training
    modules import torch; declaring a recipe must not)."""

    target: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)(*args, **kwargs)


def checkpoint_steps(total: int, every: int) -> list[int]:
    """Pythia's checkpoint schedule: steps 0, 1, 2, 4, ..., 512 (powers of two, as Biderman
    et al. 2023 publish them), then every `every` steps after 512, plus the final step `total`."""
    steps = {0, total}
    power = 1
    while power <= min(512, total):
        steps.add(power)
        power *= 2
    steps.update(s for s in range(every, total + 1, every) if s > 512)
    return sorted(steps)


_RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    _RECIPES[recipe.name] = recipe
    return recipe
