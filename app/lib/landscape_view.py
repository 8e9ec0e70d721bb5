"""The Landscape page's view: a saved `intrinsic-dim` result's headline and runs, and d_int90
against D across results (Li et al. 2018's width comparison). Pure functions (no Streamlit).

    headline_metrics(result.headline)                  # [(label, value)]
    summary = results_summary(found)                   # one row per saved result
    width_figure(summary)                              # None with fewer than two d_int90s
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def headline_metrics(head: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of a result's headline numbers, as the page's metrics."""
    return [
        ("model", str(head.get("model"))),
        ("D (parameters)", f"{head['D']:,}"),
        ("d_int90", "not reached" if head["d_int90"] is None else f"{head['d_int90']:,}"),
        (f"baseline ({head['baseline_kind']})", f"{head['baseline']:.4f}"),
        ("projection", str(head.get("projection"))),
    ]


def runs_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A result's tidy frame with its metrics as columns: one row per projection, d and seed."""
    table = frame.pivot_table(index=["projection", "d", "seed"], columns="metric", values="value")
    return table.reset_index()


def results_summary(found: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per saved result (`list_results` entries): its path and headline's model, D,
    d_int90, baseline and projection."""
    keys = ("model", "D", "d_int90", "baseline", "projection")
    return pd.DataFrame(
        [{"result": r["path"], **{k: r["headline"].get(k) for k in keys}} for r in found]
    )


def width_figure(summary: pd.DataFrame) -> go.Figure | None:
    """d_int90 against D (log) of the results that reached it, a line per projection; None
    when fewer than two did."""
    reached = summary.dropna(subset=["d_int90"])
    if len(reached) < 2:
        return None
    fig = px.line(
        reached.sort_values("D"),
        x="D",
        y="d_int90",
        color="projection",
        markers=True,
        text="model",
        log_x=True,
        hover_data=["result", "baseline"],
        title="d_int90 vs parameter count D",
    )
    fig.update_traces(marker={"size": 12}, textposition="top center")
    fig.update_yaxes(rangemode="tozero")
    return fig
