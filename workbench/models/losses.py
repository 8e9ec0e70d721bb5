"""Next-token losses of a causal language model through its handle (left-padded batches).

One definition for every analysis that measures what an edit costs the model (SAE splicing,
SVCCA compression, massive-activation ablation): the cross-entropy (nats) of predicting token
t+1 from the prefix up to t, counted where both tokens are real (not padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from workbench.errors import InputError


def next_token_nll(handle: Any, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(nll, valid), both (batch, pos - 1): per-position cross-entropy (float32, nats) of the
    next token, and where it counts (both tokens real). Runs one forward pass (no grad), so any
    `intervene` edits in force apply."""
    if batch.input_ids is None or batch.attention_mask is None:
        raise InputError("next-token loss needs a token batch of a language model")
    out = handle.run(batch)
    logits = getattr(out, "logits", out)
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    logits = logits.float()
    ids, mask = batch.input_ids, batch.attention_mask.bool()
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    return nll, mask[:, 1:] & mask[:, :-1]


def loss_sums(handle: Any, texts: Sequence[str], batch_size: int = 16) -> tuple[float, int]:
    """(sum of next-token cross-entropy over every counted token of `texts`, number of counted
    tokens); their ratio is the mean loss in nats/token."""
    total, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        nll, valid = next_token_nll(handle, handle.prepare(list(texts[start : start + batch_size])))
        total += float(nll[valid].sum())
        count += int(valid.sum())
    return total, count
