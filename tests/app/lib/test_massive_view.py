"""`workbench_app.lib.massive_view`: a `massive` summary's numbers as the page shows them, the
statistics through depth, a tracking job's charts and the ablation's bars."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench_app.lib.massive_view import (
    ablation_bars,
    ablation_figure,
    carriers_caption,
    depth_figure,
    depth_table,
    headline_metrics,
    recurring_dims_figure,
    top_table,
    tracking_jobs,
    trajectory_figure,
)


def summary(**over):
    base = {
        "max_abs": 1234.5,
        "ratio_to_median": 2000.4,
        "sequence_ratio": 12.34,
        "criteria": {"abs_threshold": 100, "rel_threshold": 1000, "n_abs": 12345, "n_rel": 7},
        "top_values": [{"abs": 9.0, "value": -9.0, "dim": 5, "token_id": 3, "extra": 1}],
        "recurring_dims": [{"dim": 5, "share_examples_top": 0.75}],
        "carrier_tokens": [
            {"token_id": 3, "token": "the", "n_examples": 4},
            {"token_id": 9, "n_examples": 1},
        ],
        "share_first_position": 0.5,
    }
    return {**base, **over}


def test_headline_metrics_spell_out_infinite_ratios():
    assert headline_metrics(summary()) == [
        ("max |a|", "1.23e+03"),
        ("top |a| / row median", "2000x"),
        ("sequence max / median", "12.3x"),
        ("|a| > 100", "12,345"),
        ("> 1000x median", "7"),
    ]
    values = dict(headline_metrics(summary(ratio_to_median=None, sequence_ratio=None)))
    assert values["top |a| / row median"] == "inf" and values["sequence max / median"] == "inf"


def test_tables_and_captions_of_a_summary():
    assert list(top_table(summary()).columns) == ["abs", "value", "dim"]  # shown ones it has
    assert carriers_caption(summary()) == (
        "Tokens carrying each example's largest |a|: 'the' (4), 9 (1). "
        "At the first position in 50% of examples."
    )
    assert carriers_caption(summary(share_first_position=None)).endswith("9 (1). ")
    assert list(recurring_dims_figure(summary()).data[0].x) == ["5"]
    assert recurring_dims_figure(summary(recurring_dims=[])) is None


def test_depth_table_per_site_in_order():
    sites = {"hook_embed": summary(max_abs=1.0), "blocks.3.x": summary(sequence_ratio=None)}
    depth = depth_table(sites)
    assert list(depth["site"]) == ["hook_embed", "blocks.3.x"]
    assert depth["layer"].tolist()[1] == 3 and pd.isna(depth["layer"].tolist()[0])
    assert list(depth["max |a|"]) == [1.0, 1234.5] and list(depth["top dim"]) == [5, 5]
    fig = depth_figure(depth)
    assert fig.layout.yaxis.type == "log" and {t.name for t in fig.data} == {
        "max |a|",
        "sequence max/median",
    }


def test_tracking_jobs_are_folders_with_a_trajectory(tmp_path):
    for name in ("b", "a", "empty"):
        (tmp_path / name).mkdir()
    for name in ("b", "a"):
        (tmp_path / name / "trajectory.parquet").write_bytes(b"")
    assert tracking_jobs(tmp_path) == ["a", "b"]
    assert tracking_jobs(tmp_path / "missing") == []


def test_trajectory_points_and_fitted_lines_share_a_colour_per_layer():
    trajectory = pd.DataFrame({"layer": [0, 0, 1, 1], "step": [0, 9, 0, 9], "ratio": [1, 2, 3, 4]})
    curves = pd.DataFrame({"layer": [0, 0], "step": [1.0, 9.0], "fit": [1.1, 2.0]})
    fig = trajectory_figure(trajectory, curves, "title")
    assert [t.name for t in fig.data] == ["layer 0", "layer 0 fit", "layer 1"]
    assert fig.data[0].marker.color == fig.data[1].line.color != fig.data[2].marker.color
    assert list(fig.data[0].x) == [1, 10]  # step + 1 on a log axis
    assert len(trajectory_figure(trajectory, pd.DataFrame(), "t").data) == 2


def test_ablation_bars_carry_the_random_draws_spread():
    table = pd.DataFrame(
        {
            "mode": ["zero", "mean"],
            "delta_massive": [0.8, 0.01],
            "delta_random_mean": [0.001, 0.002],
            "delta_random_std": [0.0005, 0.0007],
        }
    )
    bars = ablation_bars(table)
    assert list(zip(bars["mode"], bars["entries"], bars["std"], strict=True)) == [
        ("zero", "massive", 0.0),
        ("mean", "massive", 0.0),
        ("zero", "random", 0.0005),
        ("mean", "random", 0.0007),
    ]
    assert list(bars["change in loss"]) == pytest.approx([0.8, 0.01, 0.001, 0.002])
    assert "blocks.1.x" in ablation_figure(table, "blocks.1.x").layout.title.text
