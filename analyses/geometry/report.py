"""What the app's overview reads of the geometry family: its headline metrics per layer
(intrinsic dimension by TwoNN, MLE and PCA participation ratio, anisotropy, effective rank) and
which of them it draws as curves over training checkpoints."""

from __future__ import annotations

from workbench.analysis.plugins import Headline

ORDER = 10  # first among the overview's columns: the shape of a layer's activations

HEADLINES = [
    Headline("twonn", "dimension", "TwoNN dim", "TwoNN (training)", ORDER),
    Headline("mle", "dimension", "MLE dim", order=ORDER),
    Headline("pca-dim", "participation_ratio", "PCA PR", order=ORDER),
    Headline("anisotropy", "anisotropy", "anisotropy", "aniso. (training)", ORDER),
    Headline("effective-rank", "effective_rank", "effective rank", "eff. rank (training)", ORDER),
]
