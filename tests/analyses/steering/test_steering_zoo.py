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
    """At `act2` (the penultimate features). At `act1` the batch-normalised layer after it
    amplifies any push: random directions of the delta's norm flip 21% (coefficient 1) and 49%
    (coefficient 2) of the threes there (zoo recipe version 2, issue 22)."""
    series = zoo.load_series("digits-mlp")
    handle = series.load(series.steps[-1], device="cpu")
    result, _ = recipes.class_sweep(handle, "act2", source_class=3, target_class=8)
    concept = _curve(result.frame, "target_fraction", "concept")
    random = _curve(result.frame, "target_fraction", "random")
    assert concept[0.0] < 0.1  # threes are classified as threes
    assert concept[2.0] > 0.8  # the delta vector turns them into eights
    assert random[2.0] < 0.2


# --------------------------------------------------------- the CLI's report, with its defaults
PROMPTS = ["the dog", "our soup", "the coach", "a storm"]


def _cli(capsys, argv):
    from workbench.cli.main import main

    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def _sweep(capsys, vectors, *extra):
    positive, negative = recipes.grammar_targets("sentiment", 1)
    return _cli(capsys, [
        "steer", "sweep", "--model", "toy-lm", "--vectors", str(vectors), *extra,
        *[a for p in PROMPTS for a in ("--prompt", p)], "--target", ",".join(positive),
        "--opposite", ",".join(negative), "--device", "cpu", "-q",
    ])  # fmt: skip


def test_cli_defaults_name_a_site_that_moved_the_concept(tmp_path, capsys):
    """`steer extract` + `steer sweep` with their defaults (read content-mean, coefficients,
    two random controls) on toy-lm's positive-sentiment direction: a best site, whose effect
    is above the floor and at least twice its control; every block moves it (the old default,
    read last, gave a zero vector at block 0: its full stop is the same token in both sets)."""
    import json

    from analyses.steering.report import EFFECT_FLOOR

    vectors = tmp_path / "v"
    _cli(capsys, [
        "steer", "extract", "--model", "toy-lm", "--sites", "blocks.*.hook_resid_pre",
        "--dataset", "grammar-lm", "--label", "sentiment", "--positive-value", "1",
        "--out", str(vectors), "--device", "cpu", "-q",
    ])  # fmt: skip
    assert (
        json.loads((vectors / "blocks.0.hook_resid_pre.json").read_text())["provenance"]["read"]
        == "content-mean"
    )
    result = json.loads(_sweep(capsys, vectors, "--json"))
    effects = result["effect_at_max_coeff"]
    best = effects[result["best_site"]]
    assert best["concept"] > EFFECT_FLOOR and best["concept"] >= 2 * abs(best["control"])
    assert best["concept"] == max(e["concept"] for e in effects.values())
    assert all(e["concept"] >= 2 * abs(e["control"]) for e in effects.values())
    assert result["verdict"].startswith(f"Best site {result['best_site']}: concept effect")


def test_cli_sweep_of_a_vector_that_moves_nothing_names_no_site(tmp_path, capsys):
    """A direction of norm 1e-4 at block 0 (through --from-probe) moves nothing: best_site is
    null and the report says, in one sentence, that no site moved the concept."""
    import json

    import numpy as np

    from probes.directions import save_direction

    site = "blocks.0.hook_resid_pre"
    probe = save_direction(
        tmp_path / "p.safetensors", np.full(128, 1e-4 / np.sqrt(128)), site, "none"
    )
    _cli(capsys, ["steer", "extract", "--from-probe", str(probe), "--out", str(tmp_path / "v")])
    result = json.loads(_sweep(capsys, tmp_path / "v", "--json"))
    assert result["best_site"] is None
    assert result["verdict"].startswith("No site moved the concept: the largest effect was ")
    assert f"at {site} (random-direction control " in result["verdict"]
    text = _sweep(capsys, tmp_path / "v")  # the table's report ends with the same sentence
    assert text.strip().splitlines()[-1] == result["verdict"]
