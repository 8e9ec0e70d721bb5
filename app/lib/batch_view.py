"""The Batch page's view: a batch's tidy frame narrowed to what the pickers chose, and its
charts (a metric over training per site, the site x step heatmap, the scrubber's per-site
panels and the training curve). Pure functions (no Streamlit); the scrubber's data is
`workbench_app.lib.scrub`.

    scalar = scalar_rows(frame)                       # single-valued numeric metrics
    metrics = metric_choices(frame, scalar, entry)
    data = metric_rows(frame, entry, metric)          # + series (dataset site), numeric value
    over_training_figure(data, title), site_step_figure(data, metric), per_site_figure(...)
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from workbench.batch.report import step_axis
from workbench_app.lib.scrub import site_labels, site_order


def scalar_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of metrics that hold one numeric value per cell (what lines and the scrubber
    draw; a metric with several rows per cell is a table, not a number)."""
    single = frame.groupby(["cell", "metric"])["value"].transform("size") == 1
    return frame[single & pd.to_numeric(frame["value"], errors="coerce").notna()]


def metric_choices(frame: pd.DataFrame, scalar: pd.DataFrame, entry: str) -> list[str]:
    """The metrics of spec entry `entry` to offer: its scalar ones in the frame's order, else
    (none is scalar) all of them, sorted."""
    found = list(dict.fromkeys(scalar[scalar["entry"] == entry]["metric"]))
    return found or sorted(frame[frame["entry"] == entry]["metric"].unique())


def metric_rows(frame: pd.DataFrame, entry: str, metric: str) -> pd.DataFrame:
    """The rows of one metric of spec entry `entry`, values numeric (NaN where not), with
    `series`: "dataset site", a line each."""
    data = frame[(frame["entry"] == entry) & (frame["metric"] == metric)].copy()
    data["value"] = pd.to_numeric(data["value"], errors="coerce")
    data["series"] = data["dataset"] + " " + data["site"]
    return data


def over_steps(data: pd.DataFrame) -> bool:
    """Whether `data` spans more than one training step (drawn over training, else as bars)."""
    return bool(data["step"].notna().any() and data["step"].nunique() > 1)


def over_training_figure(data: pd.DataFrame, title: str) -> go.Figure:
    """`metric_rows` over training steps (the batch's step axis), a line per series."""
    shown, x, log = step_axis(data.sort_values("step"))
    fig = px.line(shown, x=x, y="value", color="series", markers=True, title=title)
    if log:
        fig.update_xaxes(type="log")
    fig.update_layout(height=420, legend_title_text="")
    return fig


def site_step_figure(data: pd.DataFrame, metric: str) -> go.Figure:
    """`metric_rows` as a site x step heatmap (the mean where a site has several series)."""
    grid = data.pivot_table(index="site", columns="step", values="value", aggfunc="mean")
    heat = px.imshow(
        grid,
        aspect="auto",
        color_continuous_scale="Viridis",
        labels={"x": "step", "y": "site", "color": metric},
        title=f"{metric}: site x step",
    )
    heat.update_xaxes(type="category")
    heat.update_layout(height=180 + 45 * len(grid))
    heat.update_yaxes(type="category")
    return heat


def bars_figure(data: pd.DataFrame, title: str) -> go.Figure:
    """`metric_rows` of one step as bars over sites, a colour per dataset."""
    fig = px.bar(data, x="site", y="value", color="dataset", barmode="group", title=title)
    fig.update_layout(height=420)
    return fig


def per_site_figure(
    profile: pd.DataFrame, step: int, first: int, metrics: list[str], wrap: int, title: str
) -> go.Figure:
    """A panel per metric of `profile` (`workbench_app.lib.scrub.layer_profile`): the value over
    sites at `step` (solid) and at the `first` step (faint, dashed), a line per dataset (or
    pair), sites in forward order and named short."""
    at = profile["reference"].map({True: f"step {first} (first)", False: f"step {step}"})
    order = site_order(profile["site"])
    labels, suffix = site_labels(order)
    rows = -(-len(metrics) // wrap)
    height = 150 + 250 * rows
    fig = px.line(
        profile.assign(at=at),
        x="site",
        y="value",
        color="series",
        line_dash="at",
        facet_col="metric",
        facet_col_wrap=wrap,
        facet_row_spacing=90 / height,
        facet_col_spacing=0.06,
        category_orders={"metric": metrics, "site": order},
        markers=True,
        title=title,
    )
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.for_each_trace(lambda t: t.update(opacity=0.35) if "(first)" in t.name else None)
    fig.update_yaxes(matches=None, showticklabels=True, title_text="")
    fig.update_xaxes(showticklabels=True, tickvals=order, ticktext=labels, title_text="")
    fig.update_layout(
        height=height,
        legend={"orientation": "h", "y": -60 / height, "yanchor": "top", "x": 0},
        legend_title_text=f"sites: ...{suffix}" if suffix else "",
        margin={"b": 90},
    )
    return fig


def has_training_metrics(curve: pd.DataFrame) -> bool:
    """Whether a training curve has a loss or an accuracy column to draw."""
    return any(c.endswith("loss") or "acc" in c for c in curve.columns)


def curve_figure(curve: pd.DataFrame, step: int, title: str) -> go.Figure:
    """The training curve's losses (and accuracies on a right-hand axis) over steps, on the
    page's step axis, with a vertical line at the scrubbed `step`."""
    shown, x, log = step_axis(curve)
    losses = [c for c in curve.columns if c.endswith("loss")]
    accuracies = [c for c in curve.columns if "acc" in c]
    fig = go.Figure()
    for column in losses:
        fig.add_scatter(x=shown[x], y=shown[column], name=column, mode="lines+markers")
    for column in accuracies:
        fig.add_scatter(
            x=shown[x],
            y=shown[column],
            name=column,
            mode="lines",
            line={"dash": "dot"},
            yaxis="y2",
        )
    fig.add_vline(x=step + 1 if x == "step + 1" else step, line_color="crimson", line_width=2)
    fig.update_layout(
        title=title,
        height=420,
        xaxis={"title": x, "type": "log", "dtick": "D2"} if log else {"title": x},
        yaxis={"title": "loss" if losses else ""},
        legend={"orientation": "h", "y": -0.25},
    )
    if accuracies:
        fig.update_layout(
            yaxis2={"title": "accuracy", "overlaying": "y", "side": "right", "range": [0, 1.05]}
        )
    return fig
