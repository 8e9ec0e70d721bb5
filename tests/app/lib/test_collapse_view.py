"""`workbench_app.lib.collapse_view`: which saved results the page offers (collapse series over
epochs; probe results, single-site ones grouped by folder) and its charts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench_app.lib.collapse_view import (
    collapse_series,
    nc1_figure,
    nc_others_figure,
    probe_figure,
    probe_sets,
    probe_steps,
    probe_table,
    probe_training_figure,
)


def test_collapse_series_need_two_checkpoints():
    frames = {
        "nc/a": pd.DataFrame({"checkpoint_step": [0, 1], "site": "x"}),
        "nc/b": pd.DataFrame({"checkpoint_step": [5, 5], "site": "x"}),
        "nc/c": pd.DataFrame({"site": ["x"]}),
        "nc/gone": None,
    }
    assert collapse_series(list(frames), frames.get) == ["nc/a"]


def test_single_site_probe_results_are_grouped_by_folder():
    frames = {
        "probe/run/site0": pd.DataFrame({"site": ["s0", "s0"]}),
        "probe/run/site1": pd.DataFrame({"site": ["s1"]}),
        "probe/multi": pd.DataFrame({"site": ["s0", "s1"]}),
    }
    assert probe_sets(list(frames), frames.get) == ["probe/run", "probe/multi"]


def collapse() -> pd.DataFrame:
    rows = [
        {"site": site, "checkpoint_step": step, "metric": metric, "value": 1.0 + step}
        for site in ("fc1", "fc2")
        for step in (0, 1, 2)
        for metric in ("nc1", "nc3", "other")
    ]
    return pd.DataFrame(rows)


def test_collapse_figures():
    assert {t.name for t in nc1_figure(collapse()).data} == {"fc1", "fc2"}
    fig = nc_others_figure(collapse())
    assert [t.name for t in fig.data] == ["nc3"] and "(fc2;" in fig.layout.title.text
    assert fig.layout.yaxis.type == "log"  # the terminal phase spans orders of magnitude


def probes(control: bool = True) -> pd.DataFrame:
    metrics = {"accuracy": 0.8, "accuracy_ci_low": 0.7, "accuracy_ci_high": 0.85}
    metrics.update({"majority_baseline": 0.3, **({"control_accuracy": 0.4} if control else {})})
    return pd.DataFrame(
        [
            {"site": site, "checkpoint_step": step, "metric": m, "value": v + 0.01 * step}
            for step in (10, 100)
            for site in ("b.1", "b.0")  # the frame's site order is kept
            for m, v in metrics.items()
        ]
    )


def test_probe_table_at_a_step_keeps_the_site_order():
    rows = probes()
    assert probe_steps(rows) == [10, 100]
    wide = probe_table(rows, 100)
    assert list(wide.index) == ["b.1", "b.0"] and wide.loc["b.0", "accuracy"] == 1.8
    assert len(probe_table(rows.assign(checkpoint_step=None), None)) == 2


def test_probe_figure_draws_the_interval_and_the_controls():
    fig = probe_figure(probe_table(probes(), 10), "pos", 10)
    assert [t.name for t in fig.data] == ["probe accuracy", "control task", "majority baseline"]
    np.testing.assert_allclose(fig.data[0].error_y.array, [0.05, 0.05])  # high - accuracy
    assert fig.layout.title.text == "pos: accuracy per site at step 10"
    fig = probe_figure(probe_table(probes(control=False), 10), "pos", None)
    assert "control task" not in [t.name for t in fig.data]
    assert probe_training_figure(probes(), "pos").layout.xaxis.type == "log"
