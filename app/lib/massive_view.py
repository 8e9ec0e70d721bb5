"""The Massive page's view: a site's `massive` summary as metrics, tables and charts, the
statistics through depth, and a tracking job's trajectory (with its fitted curves) and ablation.
Pure functions (no Streamlit).

    metrics = headline_metrics(summary)                  # [(label, value)]
    depth = depth_table({site: summary, ...}); depth_figure(depth, title)
    fits, curves = fit_layers(trajectory)                # analyses.massive.trajectory
    trajectory_figure(trajectory, curves, title); ablation_figure(ablation_summary(losses), ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from workbench.sites.names import layer_index

TOP_COLUMNS = ("abs", "value", "dim", "example", "position", "token", "ratio_to_median")


def tracking_jobs(folder: Path) -> list[str]:
    """The tracking jobs under `folder` (`<runs>/massive`): its subfolders holding a
    `trajectory.parquet` (what `python -m analyses.massive.track --out` writes), by name."""
    return sorted(p.parent.name for p in folder.glob("*/trajectory.parquet"))


def headline_metrics(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of a `massive` summary's headline numbers, as the page's metrics."""
    crit, ratio, seq = summary["criteria"], summary["ratio_to_median"], summary["sequence_ratio"]
    return [
        ("max |a|", f"{summary['max_abs']:.3g}"),
        ("top |a| / row median", "inf" if ratio is None else f"{ratio:.0f}x"),
        ("sequence max / median", "inf" if seq is None else f"{seq:.1f}x"),
        (f"|a| > {crit['abs_threshold']:g}", f"{crit['n_abs']:,}"),
        (f"> {crit['rel_threshold']:g}x median", f"{crit['n_rel']:,}"),
    ]


def example_figure(values: np.ndarray, labels: list[str], title: str) -> go.Figure:
    """|a| of one example's rows, (positions, d), over position x dimension."""
    fig = px.imshow(
        values,
        y=labels,
        aspect="auto",
        color_continuous_scale="Inferno",
        labels={"x": "dimension", "y": "position:token", "color": "|a|"},
        title=title,
    )
    return fig.update_yaxes(type="category", autorange="reversed")


def top_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The summary's largest |a| entries, in the `TOP_COLUMNS` it has."""
    top = pd.DataFrame(summary["top_values"])
    return top[[c for c in TOP_COLUMNS if c in top.columns]]


def recurring_dims_figure(summary: dict[str, Any]) -> go.Figure | None:
    """Bars of the dimensions holding each example's largest |a|; None when there are none."""
    dims = pd.DataFrame(summary["recurring_dims"])
    if dims.empty:
        return None
    dims["dim"] = dims["dim"].astype(str)
    return px.bar(
        dims,
        x="dim",
        y="share_examples_top",
        title="Dimensions holding each example's largest |a| (share of examples)",
        labels={"share_examples_top": "share of examples"},
    ).update_xaxes(type="category")


def carriers_caption(summary: dict[str, Any]) -> str:
    """Which tokens carry each example's largest |a| (with how many examples), and how often at
    the first position."""
    carriers = ", ".join(
        f"{t.get('token', t['token_id'])!r} ({t['n_examples']})" for t in summary["carrier_tokens"]
    )
    first = summary["share_first_position"]
    return f"Tokens carrying each example's largest |a|: {carriers}. " + (
        "" if first is None else f"At the first position in {first:.0%} of examples."
    )


def depth_table(summaries: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per site (in the order given) of its summary: layer, max |a|, the paper's
    sequence max/median ratio and the dim of its largest |a|."""
    return pd.DataFrame(
        [
            {
                "site": site,
                "layer": layer_index(site),
                "max |a|": s["max_abs"],
                "sequence max/median": s["sequence_ratio"],
                "top dim": s["top_values"][0]["dim"],
            }
            for site, s in summaries.items()
        ]
    )


def depth_figure(depth: pd.DataFrame) -> go.Figure:
    """Max |a| and the max/median ratio over sites, log y with values spelled out."""
    long = depth.melt(id_vars=["site"], value_vars=["max |a|", "sequence max/median"])
    fig = px.line(long, x="site", y="value", color="variable", markers=True, log_y=True,
                  title="Largest |a| and the paper's max/median ratio per site")  # fmt: skip
    return fig.update_yaxes(dtick=1, tickformat="~g")


def trajectory_figure(trajectory: pd.DataFrame, curves: pd.DataFrame, title: str) -> go.Figure:
    """Each layer's max/median ratio over training steps (+1, log) as points, its fitted curve
    (`fit_layers`) as a line of the same colour."""
    fig = go.Figure()
    palette = px.colors.qualitative.Plotly
    for i, (layer, group) in enumerate(trajectory.groupby("layer")):
        colour = palette[i % len(palette)]
        fig.add_scatter(x=group["step"] + 1, y=group["ratio"], mode="markers",
                        name=f"layer {layer}", marker={"color": colour})  # fmt: skip
        curve = curves[curves["layer"] == layer] if not curves.empty else curves
        if not curve.empty:
            fig.add_scatter(x=curve["step"] + 1, y=curve["fit"], mode="lines",
                            name=f"layer {layer} fit", line={"color": colour})  # fmt: skip
    fig.update_xaxes(type="log", title="training step + 1", dtick=1, tickformat="~g")
    fig.update_yaxes(title="max |a| / median |a| (per sequence, averaged)")
    return fig.update_layout(title=title)


def ablation_bars(table: pd.DataFrame) -> pd.DataFrame:
    """An ablation summary (`ablation_summary`) as bars: per mode, the change in loss of
    ablating the massive entries and as many random ones (with the random draws' std)."""
    bars = table.melt(id_vars=["mode"], value_vars=["delta_massive", "delta_random_mean"],
                      var_name="entries", value_name="change in loss")  # fmt: skip
    bars["entries"] = bars["entries"].map(
        {"delta_massive": "massive", "delta_random_mean": "random"}
    )
    errors = table.set_index("mode")["delta_random_std"]
    bars["std"] = [
        errors[m] if e == "random" else 0.0
        for m, e in zip(bars["mode"], bars["entries"], strict=True)
    ]
    return bars


def ablation_figure(table: pd.DataFrame, site: str) -> go.Figure:
    """`ablation_bars` of an ablation summary at `site`, grouped by mode, random ones with
    error bars."""
    return px.bar(
        ablation_bars(table), x="mode", y="change in loss", color="entries", barmode="group",
        error_y="std", title=f"Ablation at {site}: massive entries vs as many random ones",
    )  # fmt: skip
