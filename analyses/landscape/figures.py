"""The performance-vs-d chart of an intrinsic-dimension sweep (Li et al. 2018, figure 2 style):
each seed's score, the mean over seeds per d, the baseline, the 90% line and d_int90 marked."""

from __future__ import annotations

from typing import Any

from workbench.analysis.results import Result


def performance_figure(result: Result) -> Any:
    """Plotly figure: score vs d (log x axis) from an `intrinsic-dim` result."""
    import plotly.graph_objects as go

    head = result.headline
    frame = result.frame
    scores = frame[(frame["metric"] == head["metric"]) & (frame["projection"] != "direct")]
    means = scores.groupby("d")["value"].mean().sort_index()
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=scores["d"],
            y=scores["value"],
            mode="markers",
            name="each seed",
            marker={"size": 7, "color": "grey", "opacity": 0.6},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=means.index,
            y=means.values,
            mode="lines+markers",
            name="mean over seeds",
            line={"color": "royalblue"},
        )
    )
    baseline = f"baseline ({head['baseline_kind']}) {head['baseline']:.3f}"
    fig.add_hline(y=head["baseline"], line_dash="dot", annotation_text=baseline)
    fig.add_hline(
        y=head["threshold90"],
        line_dash="dash",
        line_color="firebrick",
        annotation_text=f"90% of baseline: {head['threshold90']:.3f}",
        annotation_position="bottom right",
    )
    if head.get("d_int90") is not None:
        fig.add_vline(
            x=head["d_int90"],
            line_color="seagreen",
            annotation_text=f"d_int90 = {head['d_int90']:,}",
            annotation_position="bottom left",
        )
    fig.update_layout(
        title=f"{head['model']} ({head['projection']}, D = {head['D']:,}): "
        f"{head['metric']} vs subspace dimension d",
        xaxis_title="subspace dimension d (log scale)",
        yaxis_title=head["metric"],
        xaxis_type="log",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
