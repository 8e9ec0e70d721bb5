"""The dataset registry: `Example`, and the functions datasets register under a name.

`workbench.data` imports every generator module, so that importing it registers them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import InputError


@dataclass(frozen=True)
class Example:
    """One input with its ground truth.

    Attributes:
        text: the input of a language model ("" for non-text examples).
        labels: per-example integer labels (topic, class, answer...).
        word_labels: per-token ground truth, one list per label name with one integer per
            whitespace-separated word of `text` (-1 = no label). The capture pipeline maps
            them onto the model's tokens (every token of a word gets the word's label;
            special tokens get -1) and stores them beside the activations.
        inputs: the input of a plain (non-text) model, e.g. an image (8, 8), or None.
    """

    text: str
    labels: dict[str, int] = field(default_factory=dict)
    word_labels: dict[str, list[int]] = field(default_factory=dict)
    inputs: Any = None


DatasetFn = Callable[[int | None, int], list[Example]]
_DATASETS: dict[str, DatasetFn] = {}


def register_dataset(name: str) -> Callable[[DatasetFn], DatasetFn]:
    def wrap(fn: DatasetFn) -> DatasetFn:
        _DATASETS[name] = fn
        return fn

    return wrap


def dataset_names() -> list[str]:
    """The registered dataset names, sorted (what `--dataset` and batch specs accept)."""
    return sorted(_DATASETS)


def load_dataset(name: str, n_examples: int | None = None, seed: int = 0) -> list[Example]:
    """The examples of dataset `name` (deterministic for a given `n_examples` and `seed`).

    Asking a fixed-size dataset (text, digits) for more examples than it has is an error, not a
    silent cut to what it has."""
    if name not in _DATASETS:
        raise InputError(f"unknown dataset {name!r}; valid: {', '.join(dataset_names())}")
    if n_examples is not None and n_examples <= 0:
        raise InputError(f"n_examples must be positive, got {n_examples}")
    examples = _DATASETS[name](n_examples, seed)
    if n_examples is not None and len(examples) < n_examples:
        raise InputError(
            f"dataset {name!r} has {len(examples)} examples; n_examples={n_examples} asks for more: "
            f"pass n_examples <= {len(examples)}, or none for all of them"
        )
    return examples
