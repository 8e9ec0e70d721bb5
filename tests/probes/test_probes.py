"""Linear probes: a planted label is found, random labels sit at chance, the control task exposes
a probe that memorises token types, the split keeps examples whole, directions export, bad
input, the CLI over arrays and over a store with --label."""

import json

import numpy as np
import pytest

from probes.controls import (
    cluster_bootstrap_ci,
    control_labels,
    majority_baseline,
    split_by_group,
)
from probes.directions import load_direction, probe_direction, save_direction
from probes.linear import ANALYSIS, LinearProbe, Params, evaluate, run
from workbench.analysis.registry import analyses
from workbench.analysis.sources import Source
from workbench.cli.main import main
from workbench.errors import InputError
from workbench.store import StoreWriter

SEQ = 8  # tokens per example in the synthetic stores


def planted(n=1200, d=20, k=3, strength=4.0, seed=0):
    """Features with class k planted along k fixed random directions, plus unit noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    directions = rng.normal(size=(k, d))
    return directions[y] * strength / np.sqrt(d) + rng.normal(size=(n, d)), y


def test_registered():
    assert analyses()["probe"] is ANALYSIS
    assert ANALYSIS.inputs == ("acts", "labels")


def test_planted_label_is_decoded_and_selective():
    x, y = planted()
    out = run(Source(acts=x, labels=y), Params()).headline
    assert out["accuracy"] > 0.97
    low, high = out["accuracy_ci"]
    assert low <= out["accuracy"] <= high and high - low < 0.05
    assert out["majority_baseline"] < 0.45
    assert out["control_kind"] == "row"
    assert out["control_accuracy"] < 0.45  # random labels per row: nothing to memorise
    assert out["selectivity"] > 0.5


def test_random_labels_sit_at_chance():
    x, _ = planted(n=1500)
    y = np.random.default_rng(9).integers(0, 4, len(x))
    out = run(Source(acts=x, labels=y), Params()).headline
    assert abs(out["accuracy"] - 0.25) < 0.06
    assert out["accuracy_ci"][0] < 0.25 + 0.01  # the interval reaches chance
    assert out["accuracy"] < out["majority_baseline"] + 0.05


def token_store(path, features_of, n_examples=150, n_types=60, seed=0):
    """A store of n_examples x SEQ tokens; token type t has label t % 3 (a function of the type,
    like part of speech), features from `features_of(types, labels, rng)`."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, n_types, n_examples * SEQ)
    labels = types % 3
    x = features_of(types, labels, rng).astype(np.float32)
    writer = StoreWriter(path, {"test": "probe"})
    example = np.repeat(np.arange(n_examples), SEQ)
    writer.append(
        {"site": x},
        token_ids=types,
        example_index=example,
        position=np.tile(np.arange(SEQ), n_examples),
        row_labels={"kind": labels},
        example_labels={"mood": np.arange(n_examples) % 2},
    )
    return writer.finalize()


def test_control_task_catches_a_memorising_probe(tmp_path):
    # Features that identify the token type (a random embedding per type): the label is
    # decodable, but so is any labelling of the types, so the control task is decodable too.
    def identity(types, labels, rng):
        table = rng.normal(size=(60, 64))
        return table[types] + 0.05 * rng.normal(size=(len(types), 64))

    # Features that carry only the label (no type identity): the control task fails.
    def property_only(types, labels, rng):
        table = rng.normal(size=(3, 64))
        return table[labels] + 0.5 * rng.normal(size=(len(types), 64))

    memoriser = run(
        Source.from_store(token_store(tmp_path / "a", identity), "site", "kind"), Params()
    ).headline
    honest = run(
        Source.from_store(token_store(tmp_path / "b", property_only), "site", "kind"), Params()
    ).headline
    assert memoriser["control_kind"] == honest["control_kind"] == "token"
    assert memoriser["accuracy"] > 0.95 and honest["accuracy"] > 0.95
    assert memoriser["control_accuracy"] > 0.9 and memoriser["selectivity"] < 0.1
    assert honest["control_accuracy"] < 0.6 and honest["selectivity"] > 0.4


def test_split_keeps_examples_whole():
    groups = np.repeat(np.arange(40), 5)
    train, test = split_by_group(groups, 0.25, seed=3)
    assert not set(groups[train]) & set(groups[test])
    assert len(np.unique(groups[test])) == 10 and len(train) + len(test) == 200


def test_probe_store_split_is_by_example(tmp_path):
    store = token_store(tmp_path / "s", lambda t, y, rng: rng.normal(size=(len(t), 8)))
    out = run(Source.from_store(store, "site", "kind"), Params()).headline
    assert out["n_test"] % SEQ == 0 and out["n_test_examples"] * SEQ == out["n_test"]


def test_control_labels_are_per_type_with_the_label_distribution():
    rng = np.random.default_rng(0)
    types = rng.integers(0, 500, 20000)
    labels = (rng.random(20000) < 0.2).astype(int)
    control = control_labels(labels, types, seed=1)
    for t in np.unique(types)[:50]:
        assert len(np.unique(control[types == t])) == 1
    per_type = control[np.unique(types, return_index=True)[1]]
    assert abs(per_type.mean() - 0.2) < 0.06


def test_baseline_and_bootstrap():
    assert majority_baseline(np.array([1, 1, 2]), np.array([1, 2, 2, 2])) == 0.25
    assert cluster_bootstrap_ci(np.ones(30), np.arange(30)) == (1.0, 1.0)
    rng = np.random.default_rng(0)
    correct = (rng.random(4000) < 0.7).astype(float)
    low, high = cluster_bootstrap_ci(correct, np.arange(4000))
    half = 1.96 * np.sqrt(0.7 * 0.3 / 4000)  # normal approximation for independent rows
    assert high - low == pytest.approx(2 * half, rel=0.15)
    # whole groups of identical outcomes: the interval widens as if there were 40 rows
    clustered = np.repeat(correct[:40], 100)
    low_c, high_c = cluster_bootstrap_ci(clustered, np.repeat(np.arange(40), 100))
    assert high_c - low_c > 5 * (high - low)


def test_regression_probe_and_its_control():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1000, 10))
    w = rng.normal(size=10)
    target = x @ w + 0.1 * rng.normal(size=1000)
    out = run(Source(acts=x, labels=target), Params()).headline
    assert out["task"] == "regression" and "accuracy" not in out
    assert out["r2"] > 0.99 and out["control_r2"] < 0.05 and out["selectivity"] > 0.9


def test_direction_recovers_the_planted_axis_and_round_trips(tmp_path):
    rng = np.random.default_rng(4)
    axis = rng.normal(size=16)
    axis /= np.linalg.norm(axis)
    y = rng.integers(0, 2, 2000)
    x = rng.normal(size=(2000, 16)) + np.outer(2 * y - 1, axis) * 1.5
    direction = probe_direction(x, y, target=1)
    assert direction @ axis > 0.97
    assert probe_direction(x, y, target=0) @ axis < -0.97
    three = rng.integers(0, 3, 2000)
    axes = np.eye(16)[:3] * 3
    toward_two = probe_direction(axes[three] + rng.normal(size=(2000, 16)), three, target=2)
    assert np.argmax(toward_two) == 2
    for suffix in (".safetensors", ".npy"):
        path = save_direction(tmp_path / f"v{suffix}", direction, "blocks.1", "mood", 1, acc=0.9)
        vector, meta = load_direction(path)
        assert np.allclose(vector, direction, atol=1e-6)
        assert meta["site"] == "blocks.1" and meta["label"] == "mood" and meta["target"] == "1"
    with pytest.raises(InputError, match="valid suffixes"):
        save_direction(tmp_path / "v.pt", direction, "s", "l")


def test_linear_probe_maps_coefficients_to_raw_units():
    x, y = planted(n=600, k=2)
    x = x * 100 + 5  # standardised inside; coef_ must undo it
    probe = LinearProbe("classification").fit(x, y)
    logits = x @ probe.coef_[0] + probe.intercept_[0]
    assert np.array_equal((logits > 0).astype(int), probe.predict(x))


@pytest.mark.parametrize(
    "labels,params,match",
    [
        (np.zeros(40, int), Params(), "one class only"),
        (np.arange(30) % 2, Params(), "labels have 30 rows, activations 40"),
        (np.arange(40) % 2, Params(task="ordinal"), "valid: auto, classification, regression"),
        (np.arange(40) % 2, Params(grid="a,b"), "comma-separated numbers"),
        (np.arange(40) % 2, Params(control="token"), "needs a store with token ids"),
        (np.full(40, -1), Params(), "no labelled rows"),
    ],
)
def test_bad_input(labels, params, match):
    x = np.random.default_rng(0).normal(size=(40, 4))
    with pytest.raises(InputError, match=match):
        run(Source(acts=x, labels=labels), params)


def test_label_level_is_validated_when_the_settings_are_made():
    with pytest.raises(InputError, match="label_level='tokens'; valid: auto, token, example, last"):
        Params(label_level="tokens")
    assert Params(label_level="row").label_level == "row"  # the older spelling of token


def test_evaluate_rejects_test_fraction_out_of_range():
    x, y = planted(n=100)
    with pytest.raises(InputError, match=r"test_fraction must be in \(0, 1\)"):
        evaluate(x, y, np.arange(100), None, Params(test_fraction=1.0))


def test_cli_json_arrays_and_store_label(tmp_path, capsys):
    x, y = planted(n=600)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    assert main(["analyze", "probe", "--acts", str(tmp_path / "x.npy"), "--labels",
                 str(tmp_path / "y.npy"), "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert {"accuracy", "control_accuracy", "majority_baseline", "selectivity"} <= set(out)
    assert out["accuracy"] > 0.95 and out["settings"]["grid"] == Params().grid

    def mood_features(types, labels, rng):  # the example's mood on every token, no type info
        example = np.repeat(np.arange(len(types) // SEQ), SEQ)
        return np.outer(example % 2, np.ones(8)) * 3 + rng.normal(size=(len(types), 8))

    token_store(tmp_path / "s", mood_features)
    args = ["analyze", "probe", "--store", str(tmp_path / "s"), "--site", "site"]
    assert main([*args, "--label", "mood", "--json"]) == 0
    mood = json.loads(capsys.readouterr().out)
    assert mood["accuracy"] > 0.9 and mood["control_kind"] == "token"
    assert main([*args, "--label", "mood", "--set", "label_level=last", "--json"]) == 0
    last = json.loads(capsys.readouterr().out)
    assert last["n_train"] + last["n_test"] == 150  # one row per example
    assert main([*args, "--label", "colour", "--json"]) != 0
    assert "store has no label 'colour'; valid: kind, mood" in capsys.readouterr().err
