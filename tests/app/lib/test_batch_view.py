"""`workbench_app.lib.batch_view`: a batch's frame narrowed to its scalar metrics and to one
metric's rows, and its charts over training, over sites and of the training curve."""

from __future__ import annotations

import pandas as pd

from workbench_app.lib.batch_view import (
    bars_figure,
    curve_figure,
    has_training_metrics,
    metric_choices,
    metric_rows,
    over_steps,
    over_training_figure,
    per_site_figure,
    scalar_rows,
    site_step_figure,
)

SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


def batch() -> pd.DataFrame:
    rows = [
        {"cell": f"c{step}{i}", "entry": "stats", "model": "toy", "step": step, "dataset": "d",
         "site": site, "metric": "rms", "value": float(step + i)}
        for step in (0, 100)
        for i, site in enumerate(SITES)
    ]  # fmt: skip
    rows += [  # a table-valued metric (two rows per cell) and a text one: not scalar
        {**rows[0], "metric": "spectrum", "value": 1.0},
        {**rows[0], "metric": "spectrum", "value": 2.0},
        {**rows[0], "metric": "note", "value": "n/a"},
        {**rows[0], "entry": "tables", "metric": "spectrum", "value": 1.0},
        {**rows[0], "entry": "tables", "metric": "spectrum", "value": 2.0},
    ]
    return pd.DataFrame(rows)


def test_scalar_metrics_and_the_metrics_offered():
    frame = batch()
    scalar = scalar_rows(frame)
    assert set(scalar["metric"]) == {"rms"}
    assert metric_choices(frame, scalar, "stats") == ["rms"]
    assert metric_choices(frame, scalar, "tables") == ["spectrum"]  # none scalar: all, sorted


def test_metric_rows_are_numeric_with_a_series_per_dataset_and_site():
    data = metric_rows(batch(), "stats", "rms")
    assert len(data) == 4 and data["value"].dtype.kind == "f"
    assert sorted(set(data["series"])) == [f"d {s}" for s in SITES]
    assert over_steps(data) and not over_steps(data[data["step"] == 0])
    assert metric_rows(batch(), "stats", "note")["value"].isna().all()


def test_charts_over_training_and_over_sites():
    data = metric_rows(batch(), "stats", "rms")
    fig = over_training_figure(data, "title")
    assert {t.name for t in fig.data} == {f"d {s}" for s in SITES}
    assert fig.layout.xaxis.type is None and list(fig.data[0].x) == [0, 100]  # one decade
    heat = site_step_figure(data, "rms")
    assert heat.layout.height == 180 + 45 * 2 and list(heat.data[0].x) == [0, 100]
    assert bars_figure(data[data["step"] == 0], "t").data[0].type == "bar"


def test_per_site_panels_fade_the_first_step_and_name_sites_short():
    profile = pd.DataFrame(
        {"metric": "rms", "series": "d", "site": SITES * 2, "value": [1.0, 2.0, 3.0, 4.0],
         "reference": [True, True, False, False], "step": [0, 0, 100, 100]}
    )  # fmt: skip
    fig = per_site_figure(profile, 100, 0, ["rms"], 1, "title")
    faded = [t for t in fig.data if "(first)" in t.name]
    assert faded and all(t.opacity == 0.35 for t in faded)
    assert list(fig.layout.xaxis.ticktext) == ["blocks.0", "blocks.1"]
    assert fig.layout.height == 150 + 250


def test_training_curve_marks_the_step_and_puts_accuracy_on_the_right():
    curve = pd.DataFrame(
        {"step": [0, 10, 1000], "train_loss": [3, 2, 1], "val_acc": [0.1, 0.5, 0.9]}
    )
    assert has_training_metrics(curve) and not has_training_metrics(curve[["step"]])
    fig = curve_figure(curve, 10, "t")
    assert [t.yaxis for t in fig.data] == [None, "y2"]  # loss on the left, accuracy right
    assert fig.layout.shapes[0].x0 == 11  # on the step + 1 axis
    assert fig.layout.yaxis2.range == (0, 1.05)
