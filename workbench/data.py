"""Datasets the CLI and batch specs name: generators of examples with labels.

An `Example` is one text (or tensor) with per-example labels. A dataset is a function
`(n_examples, seed) -> list[Example]`, registered by name; its card and declarative spec live in
`datasets/<name>.md` and `datasets/<name>.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.errors import InputError


@dataclass(frozen=True)
class Example:
    """One input: `text` for language models, plus per-example integer labels."""

    text: str
    labels: dict[str, int] = field(default_factory=dict)


DatasetFn = Callable[[int | None, int], list[Example]]
_DATASETS: dict[str, DatasetFn] = {}


def register_dataset(name: str) -> Callable[[DatasetFn], DatasetFn]:
    def wrap(fn: DatasetFn) -> DatasetFn:
        _DATASETS[name] = fn
        return fn

    return wrap


def dataset_names() -> list[str]:
    return sorted(_DATASETS)


def load_dataset(name: str, n_examples: int | None = None, seed: int = 0) -> list[Example]:
    """The examples of dataset `name` (deterministic for a given `n_examples` and `seed`)."""
    if name not in _DATASETS:
        raise InputError(f"unknown dataset {name!r}; valid: {', '.join(dataset_names())}")
    if n_examples is not None and n_examples <= 0:
        raise InputError(f"n_examples must be positive, got {n_examples}")
    return _DATASETS[name](n_examples, seed)


_WORDS_PER_PASSAGE = 48


@register_dataset("text")
def python_docs_text(n_examples: int | None, seed: int) -> list[Example]:
    """Natural technical English available offline: the Python reference's topic pages
    (`pydoc_data.topics`, about 65k words), with code blocks and rule lines removed, cut into
    passages of 48 words. Label `topic` = index of the source page (sorted by name).
    The order is fixed (the seed does not shuffle) so that passages line up across models.
    """
    from pydoc_data.topics import topics

    examples: list[Example] = []
    for topic_id, key in enumerate(sorted(topics)):
        prose = [
            line.strip()
            for line in topics[key].splitlines()
            if line.strip()
            and not line.startswith("   ")
            and not re.fullmatch(r"[*=\-]+", line.strip())
        ]
        words = " ".join(prose).split()
        for start in range(0, len(words) - _WORDS_PER_PASSAGE + 1, _WORDS_PER_PASSAGE):
            passage = " ".join(words[start : start + _WORDS_PER_PASSAGE])
            examples.append(Example(text=passage, labels={"topic": topic_id}))
    return examples[:n_examples] if n_examples is not None else examples
