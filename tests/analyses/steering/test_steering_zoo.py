"""Zoo findings: a sentiment and a topic direction in toy-lm shift generations more than random
directions of the same norm (dose-response), and a delta vector between two digit classes of
digits-mlp moves predictions toward the target class. Uses the built zoo (built if missing)."""

from __future__ import annotations

import pytest

from analyses.steering import recipes
from workbench import zoo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy_lm():
    series = zoo.load_series("toy-lm")
    return series.load(series.steps[-1], device="cpu")


def _curve(frame, metric, direction):
    rows = frame[(frame.metric == metric) & (frame.direction == direction)]
    return rows.groupby("coeff").value.mean()


@pytest.mark.parametrize("concept,value", [("sentiment", 1), ("topic", 2)])
def test_toy_lm_concept_direction_beats_random(toy_lm, concept, value):
    result, vectors = recipes.lm_sweep(
        toy_lm, ["blocks.2.hook_resid_pre"], concept, value, coeffs=(-6.0, 0.0, 6.0),
        n_prompts=12, n_extract=200, controls=2, max_new_tokens=6,
    )  # fmt: skip
    concept_curve = _curve(result.frame, "target_minus_opposite", "concept")
    random_curve = _curve(result.frame, "target_minus_opposite", "random")
    # dose-response: monotone in the coefficient, and far larger than the random control
    assert concept_curve[-6.0] < concept_curve[0.0] < concept_curve[6.0]
    effect = concept_curve[6.0] - concept_curve[0.0]
    assert effect > 0.1
    assert effect > 3 * abs(random_curve[6.0] - random_curve[0.0])
    assert result.headline["best_site"] == "blocks.2.hook_resid_pre"
    collateral = _curve(result.frame, "kl", "concept")
    assert collateral[0.0] == pytest.approx(0.0, abs=1e-6) and collateral[6.0] > 0


def test_digits_delta_vector_moves_predictions():
    series = zoo.load_series("digits-mlp")
    handle = series.load(series.steps[-1], device="cpu")
    result, _ = recipes.class_sweep(handle, "act1", source_class=3, target_class=8)
    concept = _curve(result.frame, "target_fraction", "concept")
    random = _curve(result.frame, "target_fraction", "random")
    assert concept[0.0] < 0.1  # threes are classified as threes
    assert concept[2.0] > 0.8  # the delta vector turns them into eights
    assert random[2.0] < 0.2
