"""Activation steering: extract directions, apply them through the intervention API, measure
what they do (see `analyses.steering.apply` for the modes and positions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.lazy import lazy_exports

if TYPE_CHECKING:
    from analyses.steering.apply import (
        MODES,
        WHERE,
        generate,
        steer,
    )
    from analyses.steering.vectors import (
        SteeringVector,
    )

# imported on first use (they import torch), so that `workbench --help` stays fast
_EXPORTS = {
    **dict.fromkeys(["MODES", "WHERE", "generate", "steer"], "analyses.steering.apply"),
    "SteeringVector": "analyses.steering.vectors",
}
__all__ = [
    "MODES",
    "SteeringVector",
    "WHERE",
    "generate",
    "steer",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
