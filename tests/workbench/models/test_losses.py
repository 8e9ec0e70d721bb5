"""Next-token losses: left padding does not change them, and the sums match per-text losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.errors import InputError
from workbench.models.losses import loss_sums, next_token_nll

TEXTS = ["the cat sat on the mat", "a dog", "the bird ran on the mat and sat"]


def test_batched_sums_equal_one_by_one(neox):
    total, count = loss_sums(neox, TEXTS, batch_size=3)
    expected_total, expected_count = 0.0, 0
    for text in TEXTS:
        ids = neox.prepare([text]).input_ids
        logits = neox.run(neox.prepare([text])).float()
        expected_total += float(F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum"))
        expected_count += ids.shape[1] - 1
    assert count == expected_count
    assert total == pytest.approx(expected_total, rel=1e-4)
    nll, valid = next_token_nll(neox, neox.prepare(TEXTS))
    assert nll.shape == valid.shape and int(valid.sum()) == count
    assert torch.isfinite(nll).all()


def test_plain_module_is_refused(mlp):
    with pytest.raises(InputError, match="token batch"):
        next_token_nll(mlp, mlp.prepare(torch.zeros(2, 8)))
