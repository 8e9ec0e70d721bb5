"""The Collapse and probes page's view: which saved results it offers, and its charts of neural
collapse over training and of probe accuracy per layer beside the controls. Pure functions (no
Streamlit).

    paths = collapse_series(result_paths, frame_of)     # neural-collapse results over epochs
    sets = probe_sets(result_paths, frame_of)           # single-site results grouped by folder
    nc1_figure(frame), nc_others_figure(frame); probe_table(rows, step), probe_figure(...)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

FrameOf = Callable[[str], pd.DataFrame | None]  # a result's frame by path (None: unreadable)
NC_OTHERS = ["nc2_equinorm", "nc2_equiangular", "nc2_max_angle", "nc3", "nc4"]


def collapse_series(paths: list[str], frame_of: FrameOf) -> list[str]:
    """The neural-collapse results among `paths` with more than one checkpoint."""
    return [
        p
        for p in paths
        if (f := frame_of(p)) is not None and f.get("checkpoint_step", pd.Series()).nunique() > 1
    ]


def probe_sets(paths: list[str], frame_of: FrameOf) -> list[str]:
    """Probe results to offer: a result covering several sites as itself, single-site results
    grouped by their folder (`workbench analyze probe --out DIR` writes one per site)."""
    sets = []
    for path in paths:
        frame = frame_of(path)
        one_site = frame is not None and frame.get("site", pd.Series()).nunique() <= 1
        key = str(PurePosixPath(path).parent) if one_site else path
        if key not in sets:
            sets.append(key)
    return sets


def nc1_figure(frame: pd.DataFrame) -> go.Figure:
    """NC1 per layer over epochs (log)."""
    nc1 = frame[frame.metric == "nc1"]
    fig = px.line(nc1, x="checkpoint_step", y="value", color="site", markers=True, log_y=True)
    fig.update_layout(title="NC1 per layer over epochs", xaxis_title="epoch", yaxis_title="NC1")
    return fig


def nc_others_figure(frame: pd.DataFrame) -> go.Figure:
    """NC2-NC4 over epochs at the last site (the classifier's input), on a log axis as in
    Papyan et al.'s figures: the terminal phase's fall spans orders of magnitude (a value of
    exactly 0, such as NC4 once the network agrees with the nearest class mean, is not drawn)."""
    last_site = frame.site.iloc[-1]
    others = frame[(frame.site == last_site) & frame.metric.isin(NC_OTHERS)]
    fig = px.line(others, x="checkpoint_step", y="value", color="metric", markers=True, log_y=True)
    fig.update_layout(
        title=f"NC2-NC4 at the classifier's input ({last_site}; log, zeros not drawn)",
        xaxis_title="epoch",
        yaxis_title="value",
    )
    return fig


def probe_steps(rows: pd.DataFrame) -> list:
    """The checkpoint steps of a label's probe rows, sorted (none: a single model)."""
    return sorted(s for s in rows.checkpoint_step.dropna().unique())


def probe_table(rows: pd.DataFrame, step) -> pd.DataFrame:
    """Metrics as columns, one row per site (in the rows' order), at `step` (all rows when
    None)."""
    at_step = rows if step is None else rows[rows.checkpoint_step == step]
    return at_step.pivot_table(index="site", columns="metric", values="value", sort=False)


def probe_figure(wide: pd.DataFrame, label: str, step) -> go.Figure:
    """Probe accuracy per site (`probe_table`) with its 95% interval, beside the control task's
    accuracy (when there is one) and the majority-class baseline."""
    fig = go.Figure()
    fig.add_bar(
        x=wide.index,
        y=wide["accuracy"],
        name="probe accuracy",
        error_y={
            "type": "data",
            "symmetric": False,
            "array": wide.get("accuracy_ci_high", wide["accuracy"]) - wide["accuracy"],
            "arrayminus": wide["accuracy"] - wide.get("accuracy_ci_low", wide["accuracy"]),
        },
    )
    if "control_accuracy" in wide:
        fig.add_bar(x=wide.index, y=wide["control_accuracy"], name="control task")
    fig.add_scatter(
        x=wide.index, y=wide["majority_baseline"], name="majority baseline", mode="lines+markers"
    )
    fig.update_layout(
        title=f"{label}: accuracy per site" + (f" at step {step}" if step is not None else ""),
        barmode="group",
        yaxis_range=[0, 1.05],
        yaxis_title="accuracy",
    )
    return fig


def probe_training_figure(rows: pd.DataFrame, label: str) -> go.Figure:
    """A label's probe accuracy over training (log steps), a line per site."""
    acc = rows[rows.metric == "accuracy"]
    fig = px.line(acc, x="checkpoint_step", y="value", color="site", markers=True, log_x=True)
    fig.update_layout(title=f"{label}: probe accuracy over training", xaxis_title="step (log)")
    return fig
