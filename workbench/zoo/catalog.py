"""Importing this module registers every zoo recipe."""

from workbench.zoo import digits, lm, modadd

__all__ = ["digits", "lm", "modadd"]
