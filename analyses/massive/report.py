"""What the app's overview reads of the massive-activations family: the largest |activation|
over the median per layer, and its curve over training checkpoints."""

from __future__ import annotations

from workbench.analysis.plugins import Headline

HEADLINES = [Headline("massive", "max_row_ratio", "max |a| / median", "max ratio (training)", 20)]
