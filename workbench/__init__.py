"""Interpretability workbench: load models, name sites, capture and intervene with scoped hooks,
store activations, and run analyses on them."""

from workbench.hooks.capture import Activations, capture
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
from workbench.models import Batch, CheckpointSeries, ModelHandle, load_model, wrap_module

__version__ = "0.1.0"

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
