"""The sites a checkpoint sweep reads per zoo classifier, importable without torch or pandas (the
CLI's parser lists them)."""

from __future__ import annotations

# shallow to deep; the last is the classifier's input (the CNN's flatten is pool2's output)
PENULTIMATE = {"digits-mlp": ("act1", "act2"), "digits-cnn": ("pool1", "flatten", "act3")}
