"""toy-lm: forcing a grammar-lm topic's codes shifts generations toward that topic."""

from __future__ import annotations

import pytest
import torch

from analyses.codebook.analysis import reference_codes
from analyses.codebook.steer import topic_steering
from analyses.codebook.train import TrainConfig, train_codebook_model

SITE = "blocks.2.hook_resid_post"


@pytest.mark.slow
def test_topic_codes_steer_generation() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig(steps=150, lr=1e-2, trainable="all", replace_every=50)
        handle, books = train_codebook_model(
            "toy-lm", SITE, n_codes=256, k=4, cfg=cfg, n_train=1000, n_eval=100
        )
        # modest degradation of the next-token loss (nats/token)
        assert (
            books.report["with_codebooks"]["loss"] < books.report["without_codebooks"]["loss"] + 0.3
        )
        examples, _, codes = reference_codes(handle, books, 400)
        result = topic_steering(handle, books, SITE, codes[SITE], examples)
    finally:
        torch.set_num_threads(threads)
    print(result)
    assert result["forced_on_topic"] > result["chance"] + 0.15
    assert result["forced_on_topic"] > result["codebooks_on_topic"] + 0.15
