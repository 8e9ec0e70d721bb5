"""What the app's overview reads of the probes: a linear probe's held-out accuracy per layer,
and its curve over training checkpoints."""

from __future__ import annotations

from workbench.analysis.plugins import Headline

HEADLINES = [Headline("probe", "accuracy", "probe accuracy", "probe (training)", 30)]
