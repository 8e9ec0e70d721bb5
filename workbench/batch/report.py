"""`workbench batch report`: one self-contained HTML page (plotly.js embedded, works offline)
with every metric of the batch over checkpoints (one line per site) or over sites, and the
failed cells."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.batch.run import batch_status, read_results
from workbench.batch.storage import ResultStore


def step_axis(frame: pd.DataFrame) -> tuple[pd.DataFrame, str, bool]:
    """(frame, x column, log axis?) for plotting over checkpoint steps: steps spanning more than
    a decade (Pythia-style schedules) go on a log axis, as `step + 1` when step 0 is present."""
    steps = frame["step"].dropna()
    positive = steps[steps > 0]
    if positive.empty or positive.max() / positive.min() < 20:
        return frame, "step", False
    if steps.min() == 0:
        return frame.assign(**{"step + 1": frame["step"] + 1}), "step + 1", True
    return frame, "step", True


def metric_figures(frame: pd.DataFrame) -> list[Any]:
    """One figure per (spec entry, metric) that has a single value per cell: the value over steps
    with a line per (model, dataset, site) when the batch spans checkpoints, else over sites."""
    import plotly.express as px

    figures: list[Any] = []
    if frame.empty:
        return figures
    for (entry, metric), group in frame.groupby(["entry", "metric"], sort=False):
        if group.groupby("cell").size().max() != 1 or not pd.api.types.is_numeric_dtype(
            group["value"]
        ):
            continue  # per-dimension or per-class rows: the app's pages show those
        group = group.assign(series=group["model"] + " " + group["dataset"] + " " + group["site"])
        title = f"{entry}: {metric}"
        if group["step"].notna().any() and group["step"].nunique() > 1:
            fig = px.line(
                group.sort_values("step"),
                x="step",
                y="value",
                color="series",
                markers=True,
                title=title,
            )
            if group["step"].min() > 0:
                fig.update_xaxes(type="log")
        else:
            fig = px.line(group, x="site", y="value", color="model", markers=True, title=title)
        fig.update_layout(height=360, legend_title_text="")
        figures.append(fig)
    return figures


def write_report(out: str, html_path: str | None = None) -> str:
    """Write the report (default OUT/report.html); returns where it went."""
    frame = read_results(out)
    status = batch_status(out)
    figures = metric_figures(frame)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>batch {html.escape(status['name'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "td,th{padding:2px 8px;text-align:left}</style></head><body>",
        f"<h1>Batch {html.escape(status['name'])}</h1>",
        f"<p>{status['done']} done, {status['failed']} failed, {status['pending']} pending of "
        f"{status['cells']} cells; {len(frame)} result rows.</p>",
    ]
    for i, fig in enumerate(figures):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=i == 0))
    if not figures:
        parts.append("<p>No single-valued metric to plot yet.</p>")
    if status["failures"]:
        parts.append(
            "<h2>Failed cells</h2><table><tr><th>cell</th><th>analysis</th><th>model</th>"
            "<th>step</th><th>site</th><th>error</th></tr>"
        )
        for f in status["failures"]:
            cells = [f["key"], f["analysis"], f["model"], f["step"], f["site"], f["error"]]
            parts.append(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    text = "\n".join(parts)
    if html_path:
        Path(html_path).write_text(text)
        return html_path
    ResultStore(out).write_bytes(("report.html",), text.encode())
    return f"{out}/report.html"
