"""Datasets the CLI and batch specs name: generators of examples with labels.

An `Example` is one text (or tensor) with per-example labels. A dataset is a function
`(n_examples, seed) -> list[Example]`, registered by name; its card and declarative spec live in
`datasets/<name>.md` and `datasets/<name>.yaml`.
"""

from workbench.data import arithmetic as _arithmetic  # noqa: F401  (registers its datasets)
from workbench.data import digits as _digits  # noqa: F401
from workbench.data import fsm as _fsm  # noqa: F401
from workbench.data import grammar as _grammar  # noqa: F401
from workbench.data import text as _text  # noqa: F401
from workbench.data.registry import (
    DatasetFn,
    Example,
    dataset_names,
    load_dataset,
    register_dataset,
)

__all__ = ["DatasetFn", "Example", "dataset_names", "load_dataset", "register_dataset"]
