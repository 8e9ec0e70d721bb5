"""What the app's overview reads of the neural-collapse family: NC1 (within-class over
between-class variability) per layer, and its curve over training checkpoints."""

from __future__ import annotations

from workbench.analysis.plugins import Headline

HEADLINES = [Headline("neural-collapse", "nc1", "NC1", "NC1 (training)", 40)]
