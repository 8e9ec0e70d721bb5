"""Interpretability workbench: load models, name sites, capture and intervene with scoped hooks,
store activations, and run analyses on them.

The names below are imported on first use (`workbench.lazy`), so that `import workbench` does
not import torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.lazy import lazy_exports

if TYPE_CHECKING:
    from workbench.hooks.capture import (
        Activations,
        capture,
    )
    from workbench.hooks.intervene import (
        Add,
        Apply,
        Edit,
        MeanAblate,
        ProjectOut,
        Replace,
        Splice,
        ZeroAblate,
        intervene,
    )
    from workbench.models import (
        Batch,
        CheckpointSeries,
        ModelHandle,
        load_model,
        wrap_module,
    )

__version__ = "0.1.0"

_EXPORTS = {
    **dict.fromkeys(["Activations", "capture"], "workbench.hooks.capture"),
    **dict.fromkeys(
        [
            "Add",
            "Apply",
            "Edit",
            "MeanAblate",
            "ProjectOut",
            "Replace",
            "Splice",
            "ZeroAblate",
            "intervene",
        ],
        "workbench.hooks.intervene",
    ),
    **dict.fromkeys(
        ["Batch", "CheckpointSeries", "ModelHandle", "load_model", "wrap_module"],
        "workbench.models",
    ),
}
__all__ = [
    "Activations",
    "Add",
    "Apply",
    "Batch",
    "CheckpointSeries",
    "Edit",
    "MeanAblate",
    "ModelHandle",
    "ProjectOut",
    "Replace",
    "Splice",
    "ZeroAblate",
    "capture",
    "intervene",
    "load_model",
    "wrap_module",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
