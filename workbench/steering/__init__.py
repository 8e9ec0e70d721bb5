"""Activation steering: extract directions, apply them through the intervention API, measure
what they do (see `workbench.steering.apply` for the modes and positions)."""

from workbench.steering.apply import MODES, WHERE, generate, steer
from workbench.steering.vectors import SteeringVector

__all__ = ["MODES", "WHERE", "SteeringVector", "generate", "steer"]
