"""Honest steering reports: the best-site rule (effect above the floor and >= 2x its random
control, else no best site and a sentence) and the content-token read positions (punctuation and
special tokens skipped), on a word-level GPT-NeoX, MiniLM's WordPiece and a tokenizer-less
handle. The zoo findings through the CLI are in test_steering_zoo.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from analyses.steering import extract
from analyses.steering.reads import DEFAULT_READ, is_punctuation_text, punctuation_flags
from analyses.steering.report import CONTROL_RATIO, EFFECT_FLOOR, best_site, moved
from workbench.errors import InputError

SITE = "blocks.1.hook_resid_pre"


def _effects(**sites: tuple[float, float]) -> dict[str, dict[str, float]]:
    return {site: {"concept": c, "control": r} for site, (c, r) in sites.items()}


@pytest.mark.parametrize(
    "effect,control,expected",
    [
        (0.30, 0.02, True),
        (0.30, -0.02, True),
        (0.30, 0.15, True),  # exactly twice the control
        (0.30, 0.16, False),  # less than twice
        (0.30, -0.16, False),  # a random direction moving it the other way counts too
        (EFFECT_FLOOR, 0.0, False),  # the floor itself is not above it
        (7.7e-6, 1e-5, False),  # the report: effect below its control
        (-0.5, 0.0, False),  # moved away from the target
        (math.nan, 0.0, False),
        (0.3, math.nan, False),
    ],
)
def test_moved_rule(effect, control, expected):
    assert CONTROL_RATIO == 2.0
    assert moved(effect, control) is expected


def test_best_site_is_the_largest_effect_that_moved():
    verdict = best_site(_effects(a=(0.5, 0.4), b=(0.3, 0.01), c=(0.1, 0.0)))
    assert verdict.site == "b"  # a has the largest effect but not 2x its control
    assert verdict.sentence.startswith("Best site b: concept effect +0.3, 30.0x")


def test_no_best_site_says_so_in_one_sentence():
    verdict = best_site(_effects(a=(7.7e-6, 1e-5), b=(0.5, 0.4)))
    assert verdict.site is None
    assert verdict.sentence == (
        "No site moved the concept: the largest effect was +0.5 at b (random-direction control "
        f"+0.4); a site must exceed the floor {EFFECT_FLOOR:g} and be at least 2x its control."
    )
    assert best_site({}).site is None and best_site({}).sentence == "No site was swept."
    assert best_site(_effects(a=(math.nan, 0.0))).sentence.endswith("every effect was NaN.")


def test_app_view_uses_the_same_rule():
    """The app recomputes a saved sweep's verdict from its frame, never trusting the stored
    best_site (sweeps saved before the rule named one whatever moved)."""
    import pandas as pd

    from workbench.analysis.results import Result
    from workbench_app.lib.steering_view import sweep_verdict

    def saved(effects: dict[str, tuple[float, float]], stored_best: str) -> Result:
        rows = [
            (site, direction, coeff, "target_minus_opposite", 0.1 + (delta if coeff else 0.0))
            for site, (concept, control) in effects.items()
            for direction, delta in (("concept", concept), ("random", control))
            for coeff in (0.0, 4.0)
        ]
        frame = pd.DataFrame(rows, columns=["site", "direction", "coeff", "metric", "value"])
        return Result("steering-sweep", frame, {"best_site": stored_best}, {})

    stale = saved({"a": (7.7e-6, 1e-5)}, stored_best="a")
    assert sweep_verdict(stale) == best_site(_effects(a=(7.7e-6, 1e-5)))
    assert sweep_verdict(stale).site is None
    assert sweep_verdict(saved({"a": (0.01, 0.0), "b": (0.3, 0.01)}, "a")).site == "b"


def test_punctuation_text():
    assert all(is_punctuation_text(t) for t in [".", " , ", "", "?!", "\u2014", "'", "\n"])
    assert not any(is_punctuation_text(t) for t in ["dog", " a", "3", "+", "e.g"])


def test_punctuation_flags_on_word_level_and_wordpiece_tokenizers(neox, minilm):
    tok = neox.tokenizer  # the zoo's word-level tokenizer (workbench.zoo.hf_folder)
    ids = torch.tensor([tok.convert_tokens_to_ids(t) for t in ["the", ".", "cat", "<|padding|>"]])
    assert punctuation_flags(tok, ids).tolist() == [False, True, False, True]
    wp = minilm.tokenizer
    ids = torch.tensor(wp("hello , world .")["input_ids"])  # [CLS] hello , world . [SEP]
    assert punctuation_flags(wp, ids).tolist() == [True, False, True, False, True, True]
    assert not punctuation_flags(None, ids).any()  # no tokenizer: nothing to decode


def test_content_reads_skip_the_full_stop(neox):
    with_stop = ["the cat sat .", "a big dog ran on the mat ."]
    without = ["the cat sat", "a big dog ran on the mat"]
    last_content = extract.read_site(neox, with_stop, SITE, "last-content")
    assert torch.allclose(last_content, extract.read_site(neox, without, SITE, "last"), atol=1e-5)
    content_mean = extract.read_site(neox, with_stop, SITE, "content-mean")
    words = [extract.read_site(neox, [t], SITE, "all")[1:].mean(0) for t in without]  # no BOS
    assert torch.allclose(content_mean, torch.stack(words), atol=1e-5)
    # a text of punctuation only falls back to its real tokens
    only = extract.read_site(neox, [". ."], SITE, "content-mean")
    assert torch.allclose(only, extract.read_site(neox, [". ."], SITE, "mean"), atol=1e-6)
    assert DEFAULT_READ == "content-mean"
    with pytest.raises(InputError, match="read='middle'; valid: content-mean, last-content"):
        extract.read_site(neox, with_stop, SITE, "middle")


def test_content_reads_without_a_tokenizer(neox):
    bare = dataclasses.replace(neox, tokenizer=None)  # token ids only: every token is content
    batch = neox.prepare(["the cat sat .", "a dog ran ."]).input_ids  # same length: no padding
    for content, plain in [("content-mean", "mean"), ("last-content", "last")]:
        got = extract.read_site(bare, batch, SITE, content)
        assert torch.allclose(got, extract.read_site(bare, batch, SITE, plain), atol=1e-6)
