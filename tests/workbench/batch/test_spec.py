"""Batch spec validation: every error names the file, the line and the field; plan keys are
content hashes (stable, and changed exactly where an input changed)."""

from __future__ import annotations

import json

import pytest
from batch_specs import write_spec

from workbench.batch import load_spec, make_plan
from workbench.batch.checkpoints import select_steps
from workbench.batch.spec import SpecError, parse_spec

GOOD = """\
name: t
models:
  - model: toy-lm
    steps: [0, last]
datasets:
  - dataset: text
    n_examples: 8
sites: blocks.0.hook_resid_post
analyses:
  - analysis: twonn
    params:
      max_samples: 100
  - analysis: probe
    label: topic
"""


def test_good_spec_parses():
    spec = parse_spec(GOOD, "good.yaml")
    assert spec.name == "t" and spec.out == "runs/batch/t"
    assert spec.sites == ("blocks.0.hook_resid_post",)
    assert spec.analyses[0].params == {"max_samples": 100}
    assert spec.analyses[1].label == "topic"


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "analysis: twonn",
            "analysis: twonm",
            "good.yaml:10: analyses[0].analysis",
            "unknown analysis 'twonm'",
        ),
        (
            "max_samples: 100",
            "max_sample: 100",
            "good.yaml:12: analyses[0].params.max_sample",
            "no setting 'max_sample'",
        ),
        (
            "max_samples: 100",
            "max_samples: many",
            "good.yaml:12: analyses[0].params.max_samples",
            "must be a int",
        ),
        ("    label: topic\n", "", "good.yaml:13: analyses[1]", "needs labels"),
        ("dataset: text", "dataset: txt", "good.yaml:6: datasets[0].dataset", "valid: digits"),
        (
            "n_examples: 8",
            "n_examples: -1",
            "good.yaml:7: datasets[0].n_examples",
            "positive integer",
        ),
        (
            "steps: [0, last]",
            "steps: [0, latest]",
            "good.yaml:4: models[0].steps",
            "not a step selection",
        ),
        ("name: t", "name: t\nsitez: x", "good.yaml:2: sitez", "unknown field 'sitez'"),
        (
            "  - analysis: probe",
            "  - analysis: svcca\n  - analysis: probe",
            "good.yaml:13: analyses[1]",
            "add against",
        ),
        ("sites: blocks.0.hook_resid_post\n", "", "good.yaml:1: spec", "missing 'sites'"),
    ],
)
def test_errors_name_line_and_field(old, new, where, message):
    assert old in GOOD
    with pytest.raises(SpecError) as info:
        parse_spec(GOOD.replace(old, new), "good.yaml")
    text = str(info.value)
    assert text.startswith(where), text
    assert message in text, text


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(SpecError, match=r"bad.yaml:3: not valid YAML"):
        parse_spec("name: t\nmodels:\n  - a: b: c\n", "bad.yaml")


def test_trajectory_analysis_needs_an_upstream():
    text = GOOD + "  - analysis: massive-fit\n"
    with pytest.raises(
        SpecError, match="analyses\\[2\\].over_steps: 'massive-fit' reads a trajectory"
    ):
        parse_spec(text, "good.yaml")
    text = GOOD + "  - analysis: massive-fit\n    over_steps: {analysis: massive, metric: x}\n"
    with pytest.raises(SpecError, match="'massive' is not another analysis entry of this spec"):
        parse_spec(text, "good.yaml")


def test_step_selection():
    steps = [0, 1, 2, 4, 8, 16, 30]
    assert select_steps(steps, "all") == steps
    assert select_steps(steps, "last") == [30]
    assert select_steps(steps, [8, 0, "last"]) == [0, 8, 30]
    assert select_steps(steps, {"every": 3}) == [0, 4, 30]
    with pytest.raises(Exception, match="no step 5"):
        select_steps(steps, [5])


def test_plan_keys_are_content_hashes(tmp_path, zoo_root):
    spec_path = write_spec(tmp_path / "spec.yaml", zoo_root)
    first = make_plan(load_spec(spec_path), estimate=False)
    again = make_plan(load_spec(spec_path), estimate=False)
    assert [c.key for c in first.cells] == [c.key for c in again.cells]
    assert len({c.key for c in first.cells}) == len(first.cells) == 4 * 2 * 2
    assert len(first.captures) == 4 and len({c.key for c in first.captures}) == 4

    analyses = [
        {"analysis": "anisotropy", "params": {"n_pairs": 1000}},  # changed
        {"analysis": "probe", "label": "topic", "params": {"folds": 2}},
    ]
    changed = make_plan(
        load_spec(write_spec(tmp_path / "spec.yaml", zoo_root, analyses=analyses)), estimate=False
    )
    assert [c.key for c in changed.captures] == [c.key for c in first.captures]
    for old, new in zip(first.cells, changed.cells, strict=True):
        assert (old.key == new.key) == (old.analysis == "probe")

    datasets = [{"dataset": "text", "n_examples": 25, "max_length": 24}]
    changed = make_plan(
        load_spec(write_spec(tmp_path / "spec.yaml", zoo_root, datasets=datasets)), estimate=False
    )
    assert not {c.key for c in changed.captures} & {c.key for c in first.captures}
    assert not {c.key for c in changed.cells} & {c.key for c in first.cells}


def test_plan_estimate_counts_tokens(tmp_path, zoo_root):
    plan = make_plan(load_spec(write_spec(tmp_path / "spec.yaml", zoo_root)))
    estimate = plan.estimate
    assert estimate["captures"] == 4 and estimate["cells"] == 16
    assert estimate["forward_examples"] == 4 * 24
    # 24 texts truncated to 24 tokens: at most 24 * 24 rows, two sites of width d_model, float32
    d_model = 128
    assert 0 < estimate["store_bytes"] <= 4 * 24 * 24 * 2 * d_model * 4


def test_unknown_site_is_named(tmp_path, zoo_root):
    spec = load_spec(
        write_spec(tmp_path / "spec.yaml", zoo_root, sites=["blocks.9.hook_resid_post"])
    )
    with pytest.raises(Exception, match=r"spec.yaml:\d+: sites: model 'toy-lm': unknown site"):
        make_plan(spec, estimate=False)


def test_cli_plan_prints_cells_and_estimate(tmp_path, zoo_root, capsys):
    from workbench.cli.main import main

    spec = write_spec(tmp_path / "spec.yaml", zoo_root)
    assert main(["batch", "plan", str(spec)]) == 0
    text = capsys.readouterr().out
    assert "4 captures:" in text and "16 cells:" in text
    assert "toy-lm@30" in text and "probe" in text
    assert "96 examples in 4 forward batches" in text
    assert main(["batch", "plan", str(spec), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["cells"]) == 16 and plan["estimate"]["store_bytes"] > 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("anisotropy", "anisotropi"))
    assert main(["batch", "plan", str(bad)]) == 2
    assert "bad.yaml:" in capsys.readouterr().err


def test_repeated_analyses_get_entry_names():
    text = GOOD + "  - analysis: probe\n    label: sentiment\n"
    spec = parse_spec(text, "good.yaml")
    from workbench.batch.spec import entry_names

    assert entry_names(spec.analyses) == ["twonn", "probe#1", "probe#2"]
    fit = "  - analysis: massive-fit\n    over_steps: {analysis: probe, metric: accuracy}\n"
    with pytest.raises(SpecError, match="valid: twonn, probe#1, probe#2"):
        parse_spec(text + fit, "good.yaml")
    parse_spec(text + fit.replace("analysis: probe,", "analysis: probe#2,"), "good.yaml")
