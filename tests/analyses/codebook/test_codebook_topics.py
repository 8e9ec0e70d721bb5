"""toy-lm: forcing each grammar-lm topic's codes shifts generations toward that topic (grouped
codebooks trained through the CLI, `grouped_toy`)."""

from __future__ import annotations

import pytest
import torch

from analyses.codebook.analysis import reference_codes
from analyses.codebook.model import load_codebook_model
from analyses.codebook.steer import topic_steering

SITE = "blocks.1.hook_resid_post"


@pytest.mark.slow
def test_topic_codes_steer_generation(grouped_toy) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        handle, books = load_codebook_model(grouped_toy)
        # modest degradation of the next-token loss (nats/token)
        assert (
            books.report["with_codebooks"]["loss"] < books.report["without_codebooks"]["loss"] + 0.3
        )
        examples, _, codes = reference_codes(handle, books, 400)
        result = topic_steering(handle, books, SITE, codes[SITE], examples)
    finally:
        torch.set_num_threads(threads)
    print(result)
    assert all(len(r["codes"]) == 3 for r in result["per_topic"])
    assert result["forced_on_topic"] > result["chance"] + 0.15
    assert result["forced_on_topic"] > result["codebooks_on_topic"] + 0.15
