"""Model loading: every source becomes one `ModelHandle`."""

from workbench.models.handle import Batch, ModelHandle, ModelInfo
from workbench.models.hub import HubSeries
from workbench.models.loading import SHORT_NAMES, load_model, wrap_module
from workbench.models.series import CheckpointSeries

__all__ = [
    "Batch",
    "CheckpointSeries",
    "HubSeries",
    "ModelHandle",
    "ModelInfo",
    "SHORT_NAMES",
    "load_model",
    "wrap_module",
]
