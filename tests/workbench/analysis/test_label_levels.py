"""Explicit label levels (issue 24, item 3): a label name held at both levels (per token and per
example) is an error naming both unless a level is chosen; each label-aware analysis (probe,
neural collapse, SAE feature label statistics) names the level it read in its output; batch
specs take `label_level`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.analysis.registry import get_analysis
from workbench.analysis.sources import Source
from workbench.batch.spec import parse_spec
from workbench.errors import InputError
from workbench.store import StoreWriter

SEQ = 4
N_EXAMPLES = 40


@pytest.fixture
def store(tmp_path):
    """40 examples x 4 tokens. `mood` exists at both levels: per example (example % 2) and per
    token (position % 2), with features that carry both; `kind` is a row label only, `split`
    an example label only."""
    rng = np.random.default_rng(0)
    example = np.repeat(np.arange(N_EXAMPLES), SEQ)
    position = np.tile(np.arange(SEQ), N_EXAMPLES)
    x = np.stack([example % 2, position % 2], 1) * 3.0 + rng.normal(size=(len(example), 2))
    x = np.concatenate([x, rng.normal(size=(len(example), 4))], 1).astype(np.float32)
    writer = StoreWriter(tmp_path / "s", {"model": "t", "sites": ["h"]})
    writer.append(
        {"h": x},
        token_ids=None,
        example_index=example,
        position=position,
        row_labels={"mood": position % 2, "kind": position % 3},
        example_labels={"mood": np.arange(N_EXAMPLES) % 2, "split": np.arange(N_EXAMPLES) % 3},
    )
    return writer.finalize()


def test_source_levels_ambiguous_name_is_an_error_naming_both(store):
    mood = Source.from_store(store, "h", label="mood")
    assert mood.label_levels() == ["token", "example"]
    with pytest.raises(InputError, match=r"'mood' exists at both levels.*per token.*per example"):
        mood.label_array()
    with pytest.raises(InputError, match="label_level=token or label_level=example"):
        mood.resolve_label_level("auto")
    assert np.array_equal(mood.label_array("token"), np.tile(np.arange(SEQ) % 2, N_EXAMPLES))
    assert np.array_equal(mood.label_array("example"), np.repeat(np.arange(N_EXAMPLES) % 2, SEQ))
    kind = Source.from_store(store, "h", label="kind")
    assert kind.resolve_label_level() == "token"  # one level: auto takes it
    with pytest.raises(InputError, match="no example-level label 'kind'.*label_level=token"):
        kind.label_array("example")
    assert Source.from_store(store, "h", label="split").resolve_label_level() == "example"
    with pytest.raises(InputError, match="label_level='word'; valid: auto, token, example"):
        kind.label_array("word")
    given = Source(acts=np.ones((3, 2)), labels=np.array([0, 1, 0]))
    assert given.resolve_label_level() == "given"


def test_probe_names_its_level_and_refuses_an_ambiguous_name(store):
    probe = get_analysis("probe")
    source = Source.from_store(store, "h", label="mood")
    with pytest.raises(InputError, match="exists at both levels"):
        probe.run(source, probe.make_params({"folds": "2"}))
    levels = {}
    for level in ("token", "example", "last"):
        params = probe.make_params({"folds": "2", "label_level": level})
        result = probe.run(source, params)
        levels[level] = result
        assert result.params["label_level"] == level
        assert result.to_json()["settings"]["label_level"] == level
        assert set(result.to_frame()["param_label_level"]) == {level}
    # each level is a different labelling of the same rows: last keeps one row per example
    assert levels["last"].headline["n_train"] + levels["last"].headline["n_test"] == N_EXAMPLES
    assert levels["token"].headline["n_train"] + levels["token"].headline["n_test"] == (
        N_EXAMPLES * SEQ
    )
    row = probe.run(Source.from_store(store, "h", label="kind"), probe.make_params({"folds": "2"}))
    assert row.params["label_level"] == "token"  # auto resolved, and said so


def test_neural_collapse_names_its_level(store):
    nc = get_analysis("neural-collapse")
    source = Source.from_store(store, "h", label="mood")
    with pytest.raises(InputError, match="exists at both levels"):
        nc.run(source, nc.make_params({}))
    for level in ("token", "example"):
        result = nc.run(source, nc.make_params({"label_level": level}))
        assert result.params["label_level"] == level
        assert result.headline["n_classes"] == 2
    # the two levels give different class structure: NC1 differs
    token = nc.run(source, nc.make_params({"label_level": "token"})).headline["nc1"]
    example = nc.run(source, nc.make_params({"label_level": "example"})).headline["nc1"]
    assert token != pytest.approx(example)
    arrays = Source(acts=np.eye(4).repeat(3, 0), labels=np.repeat(np.arange(4), 3))
    assert nc.run(arrays, nc.make_params({})).params["label_level"] == "given"
    with pytest.raises(InputError, match="label_level='last'; valid: auto, token, example"):
        nc.make_params({"label_level": "last"})


def test_sae_feature_stats_name_each_labels_level(store, tmp_path):
    from analyses.sae.features import feature_stats, load_feature_stats, save_feature_stats
    from analyses.sae.registry import identity_sae

    sae = identity_sae(6)
    stats = feature_stats(sae, store, "h")
    assert stats.label_levels == {
        "mood": "token",
        "kind": "token",
        "example:mood": "example",
        "split": "example",
    }
    assert {(r["label"], r["level"]) for r in stats.best_latents()} >= {
        ("mood", "token"),
        ("example:mood", "example"),
    }
    only = feature_stats(sae, store, "h", label_level="example")
    assert only.label_levels == {"mood": "example", "split": "example"}
    # latent 0 is relu(x_0), and x_0 carries the example's mood: its best label is that level
    best = {(r["label"], r["value"]): r["latent"] for r in only.best_latents()}
    assert best[("mood", 1)] == 0
    save_feature_stats(only, tmp_path / "f", {"site": "h"})
    info = json.loads((tmp_path / "f" / "features.json").read_text())
    assert info["label_levels"] == {"mood": "example", "split": "example"}
    assert load_feature_stats(tmp_path / "f")[0].label_levels == only.label_levels
    with pytest.raises(InputError, match="label_level 'both'; valid: all, token, example"):
        feature_stats(sae, store, "h", label_level="both")


SPEC = """\
name: levels
out: {out}
models:
  - model: toy-lm
datasets:
  - dataset: text
sites: ["blocks.0.hook_resid_post"]
analyses:
  - analysis: probe
    label: topic
    label_level: {level}
"""


def test_batch_spec_takes_label_level(tmp_path):
    spec = parse_spec(SPEC.format(out=tmp_path, level="example"), "s.yaml")
    assert spec.analyses[0].params == {"label_level": "example"}
    with pytest.raises(InputError, match=r"s.yaml:\d+: analyses\[0\].*label_level='word'"):
        parse_spec(SPEC.format(out=tmp_path, level="word"), "s.yaml")
    twonn = SPEC.format(out=tmp_path, level="token").replace(
        "analysis: probe\n    label: topic\n", "analysis: twonn\n"
    )
    with pytest.raises(InputError, match=r"analyses\[0\].label_level: 'twonn' does not read"):
        parse_spec(twonn, "s.yaml")
    both = SPEC.format(out=tmp_path, level="token") + "    params: {label_level: last}\n"
    with pytest.raises(InputError, match="disagree"):
        parse_spec(both, "s.yaml")
