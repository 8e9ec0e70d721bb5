"""The Batch page's checkpoint scrubber helpers, on small frames and files built here."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import InputError
from workbench_app.lib.scrub import (
    curve_path,
    layer_profile,
    nearest_step,
    read_training_curve,
    site_labels,
    site_order,
    values_table,
)

STEPS = [0, 4, 30]


@pytest.mark.parametrize(
    ("wanted", "step"),
    [
        ("4", 4),
        (30, 30),
        ("0", 0),
        ("5", 4),  # nearest
        ("17", 30),  # 17 is a tie between 4 and 30: the later step
        ("16", 4),
        ("-3", 0),
        ("1e6", 30),
        ("4.4", 4),
        (None, 30),  # missing: the last step
        ("", 30),
        ("last", 30),
        ("nan", 30),
        ("inf", 30),
    ],
)
def test_nearest_step(wanted, step):
    assert nearest_step(STEPS, wanted) == step


def test_nearest_step_ignores_the_order_given_and_needs_steps():
    assert nearest_step([30, 0, 4], None) == 30
    assert nearest_step([30, 0, 4], "3") == 4
    with pytest.raises(InputError, match="no checkpoint steps"):
        nearest_step([], "4")


def test_site_order_sorts_numbered_sites_by_layer_in_their_places():
    sites = ["hook_embed", "blocks.10.mlp", "blocks.2.mlp", "blocks.10.mlp", "ln_final"]
    assert site_order(sites) == ["hook_embed", "blocks.2.mlp", "blocks.10.mlp", "ln_final"]
    assert site_order(["layers.1", "fc1", "layers.0"]) == ["layers.0", "fc1", "layers.1"]
    assert site_order([]) == []


@pytest.mark.parametrize(
    ("sites", "labels", "suffix"),
    [
        (
            ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"],
            ["blocks.0", "blocks.1"],
            "hook_resid_post",
        ),
        (["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"], ["blocks.0", "blocks.1"], "attn.hook_z"),
        (["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"], None, ""),  # nothing shared
        (["a.x", "b.x", "x"], None, ""),  # `x` would be empty
        (["blocks.0.hook_resid_post"], ["blocks.0"], "hook_resid_post"),
        (["fc1", "fc2"], None, ""),
        (["layers.3.0", "blocks.3.0"], None, ""),  # the shared `3.0` holds the layer number
        ([], [], ""),
    ],
)
def test_site_labels_drop_the_shared_suffix(sites, labels, suffix):
    assert site_labels(sites) == (sites if labels is None else labels, suffix)


def _rows() -> pd.DataFrame:
    """Two metrics, two datasets, three sites (listed out of layer order), three steps; value
    = 100 * step + 10 * layer + metric number (+ 0.5 on the second dataset), so every row can be
    checked from its coordinates."""
    rows = []
    for step in (30, 0, 4):
        for m, metric in enumerate(["b_metric", "a_metric"]):
            for dataset, extra in (("d1", 0.0), ("d2", 0.5)):
                for site in ("blocks.10.x", "blocks.2.x", "blocks.1.x"):
                    layer = int(site.split(".")[1])
                    value = 100 * step + 10 * layer + m + extra
                    rows.append((metric, dataset, site, step, value))
    return pd.DataFrame(rows, columns=["metric", "dataset", "site", "step", "value"])


def _expected(metric: str, dataset: str, site: str, step: int) -> float:
    m = ["b_metric", "a_metric"].index(metric)
    return 100 * step + 10 * int(site.split(".")[1]) + m + (0.5 if dataset == "d2" else 0.0)


def test_layer_profile_holds_the_step_and_the_reference_in_layer_order():
    profile = layer_profile(_rows(), step=4, reference=0)
    assert list(profile.columns) == ["metric", "series", "site", "step", "value", "reference"]
    assert len(profile) == 2 * 2 * 3 * 2  # metrics x datasets x sites x (step, reference)
    for row in profile.itertuples():
        assert row.value == _expected(row.metric, row.series, row.site, row.step)
        assert row.reference == (row.step == 0)
    # metrics in order of appearance, the scrubbed step before the reference, sites by layer
    first = profile[(profile["metric"] == "b_metric") & ~profile["reference"]]
    assert list(profile["metric"].unique()) == ["b_metric", "a_metric"]
    assert list(first["series"]) == ["d1"] * 3 + ["d2"] * 3
    assert list(first["site"]) == ["blocks.1.x", "blocks.2.x", "blocks.10.x"] * 2
    assert list(profile["reference"][:12]) == [False] * 6 + [True] * 6


def test_layer_profile_without_a_distinct_reference_has_one_step():
    for reference in (None, 30):
        profile = layer_profile(_rows(), step=30, reference=reference)
        assert set(profile["step"]) == {30} and not profile["reference"].any()
        assert len(profile) == 12
    assert layer_profile(_rows(), step=7).empty  # no checkpoint 7 in the batch


def test_layer_profile_labels_paired_cells():
    rows = pd.DataFrame(
        {
            "metric": ["cka", "cka"],
            "dataset": ["d", "d"],
            "site": ["blocks.0.x", "blocks.0.x"],
            "site_b": ["blocks.1.x", None],
            "step_b": [None, 8],
            "step": [4, 4],
            "value": [0.25, 0.75],
        }
    )
    profile = layer_profile(rows, step=4)
    assert dict(zip(profile["series"], profile["value"], strict=True)) == {
        "d vs blocks.1.x": 0.25,
        "d @8": 0.75,
    }


def test_values_table_is_the_scrubbed_step_by_site_and_metric():
    table = values_table(layer_profile(_rows(), step=4, reference=0))
    assert list(table.columns) == ["series", "site", "b_metric", "a_metric"]
    assert list(table["site"]) == ["blocks.1.x", "blocks.2.x", "blocks.10.x"] * 2
    for row in table.itertuples(index=False):
        assert row.b_metric == _expected("b_metric", row.series, row.site, 4)
        assert row.a_metric == _expected("a_metric", row.series, row.site, 4)


def test_curve_path_finds_the_batch_zoo_inside_the_allowed_folders(tmp_path):
    runs, zoo, app_zoo = tmp_path / "runs", tmp_path / "zoo", tmp_path / "app-zoo"
    spec = f"name: x\nzoo_root: {zoo}\n"
    expected = (zoo / "toy-lm" / "metrics.json").resolve()
    assert curve_path("toy-lm", spec, [runs, zoo], app_zoo) == expected
    # no zoo_root in the spec: the app's zoo
    assert curve_path("toy-lm", "name: x\n", [runs, app_zoo], app_zoo) == (
        (app_zoo / "toy-lm" / "metrics.json").resolve()
    )
    assert curve_path("toy-lm", "{not: [yaml", [app_zoo], app_zoo).parent.name == "toy-lm"
    # a zoo inside the runs directory is readable too
    inner = runs / "zoo"
    assert curve_path("m", f"zoo_root: {inner}", [runs, app_zoo], app_zoo).parent == inner / "m"


def test_curve_path_refuses_files_outside_and_non_zoo_models(tmp_path):
    runs, zoo, app_zoo = tmp_path / "runs", tmp_path / "zoo", tmp_path / "app-zoo"
    with pytest.raises(InputError, match="--zoo-root .*zoo"):
        curve_path("toy-lm", f"zoo_root: {zoo}", [runs, app_zoo], app_zoo)
    for model in ("runs/series", "..", "", "/abs/model"):
        with pytest.raises(InputError, match="not a zoo name"):
            curve_path(model, "", [runs, app_zoo], app_zoo)


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_read_training_curve_of_each_recipe_format(tmp_path):
    lm = {
        "config": {"steps": 4},
        "curve": [
            {"step": 4, "train_loss": 2.0, "test_loss": 2.5},
            {"step": 0, "train_loss": 5.0, "test_loss": 5.1},
        ],
        "final": {"train_loss": 2.0},
    }
    curve = read_training_curve(_write(tmp_path / "lm.json", lm))
    assert list(curve.columns) == ["step", "train_loss", "test_loss"]
    assert curve["step"].tolist() == [0, 4] and curve["test_loss"].tolist() == [5.1, 2.5]
    modadd = [{"step": 0, "train_loss": 4.6, "train_acc": 0.01, "test_loss": 4.7, "test_acc": 0}]
    curve = read_training_curve(_write(tmp_path / "modadd.json", modadd))
    assert curve.to_dict("records") == [
        {"step": 0, "train_loss": 4.6, "train_acc": 0.01, "test_loss": 4.7, "test_acc": 0.0}
    ]
    digits = [{"epoch": 0, "train_loss": 2.3, "test_acc": 0.1}, {"epoch": 1, "train_loss": 2.2}]
    curve = read_training_curve(_write(tmp_path / "digits.json", digits))
    assert curve["step"].tolist() == [0, 1] and curve["train_loss"].tolist() == [2.3, 2.2]
    assert curve["test_acc"].iloc[0] == 0.1 and pd.isna(curve["test_acc"].iloc[1])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{oops", "not readable JSON"),
        ({"final": {}}, "expected a list of rows"),
        ([], "expected a list of rows"),
        ([1, 2], "expected a list of rows"),
        ([{"loss": 1.0}], "no step or epoch"),
    ],
)
def test_read_training_curve_says_why_there_is_none(tmp_path, content, message):
    path = tmp_path / "metrics.json"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        _write(path, content)
    with pytest.raises(InputError, match=message):
        read_training_curve(path)
