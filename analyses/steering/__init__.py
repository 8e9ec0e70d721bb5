"""Activation steering: extract directions, apply them through the intervention API, measure
what they do (see `analyses.steering.apply` for the modes and positions)."""

from analyses.steering.apply import MODES, WHERE, generate, steer
from analyses.steering.vectors import SteeringVector

__all__ = ["MODES", "WHERE", "SteeringVector", "generate", "steer"]
