"""`workbench_app.lib.landscape_view`: a result's headline as metrics, its runs as a table, and
d_int90 against D across results."""

from __future__ import annotations

import pandas as pd

from workbench_app.lib.landscape_view import (
    headline_metrics,
    results_summary,
    runs_table,
    width_figure,
)

HEAD = {"model": "mlp", "D": 12345, "d_int90": 200, "baseline": 0.96, "baseline_kind": "direct",
        "projection": "fastfood"}  # fmt: skip


def test_headline_metrics():
    assert headline_metrics(HEAD) == [
        ("model", "mlp"),
        ("D (parameters)", "12,345"),
        ("d_int90", "200"),
        ("baseline (direct)", "0.9600"),
        ("projection", "fastfood"),
    ]
    assert dict(headline_metrics({**HEAD, "d_int90": None}))["d_int90"] == "not reached"


def test_runs_table_has_a_row_per_projection_d_and_seed():
    frame = pd.DataFrame(
        {"projection": "dense", "d": [5, 5, 50, 50], "seed": [0, 1, 0, 1], "metric": "accuracy",
         "value": [0.1, 0.2, 0.8, 0.9]}
    )  # fmt: skip
    table = runs_table(frame)
    assert list(table.columns) == ["projection", "d", "seed", "accuracy"] and len(table) == 4


def test_width_comparison_needs_two_results_that_reached_d_int90():
    found = [
        {"path": f"id/w{w}", "headline": {**HEAD, "D": 100 * w, "d_int90": d}}
        for w, d in ((8, 200), (32, None), (16, 180))
    ]
    summary = results_summary(found)
    assert list(summary.columns) == ["result", "model", "D", "d_int90", "baseline", "projection"]
    fig = width_figure(summary)
    assert list(fig.data[0].x) == [800, 1600] and fig.layout.xaxis.type == "log"
    assert width_figure(summary.iloc[:2]) is None  # one reached
