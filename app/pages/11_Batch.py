"""Batch page: the results of a `workbench batch` run (its `results.parquet`) over checkpoints and
layers: one metric over training steps with a line per site, the same as a site x step heatmap,
a checkpoint scrubber (the analysis's metrics over sites at one step, beside the zoo model's
training curve), the cells' status with their errors, and the tidy frame as CSV. View state
(batch, analysis, metric, model, step) lives in the URL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from workbench.app_export import show_figure, show_table
from workbench.app_state import url_select_slider, url_selectbox
from workbench.batch.report import step_axis
from workbench.batch.scrub import (
    curve_path,
    layer_profile,
    nearest_step,
    read_training_curve,
    site_labels,
    site_order,
    values_table,
)
from workbench.errors import InputError
from workbench.overview import batch_folders
from workbench.runsdir import runs_root
from workbench.zoo import zoo_root

st.set_page_config(page_title="Workbench: batch", layout="wide")
root = runs_root()
PAGE = "batch"  # namespaces its widgets' session state (shared by every page of the app)


@st.cache_data(show_spinner="reading results...")
def load(folder: str, mtime: float) -> tuple[pd.DataFrame, dict]:
    """The batch's tidy frame and status (keyed by the parquet's time: a rerun reloads)."""
    from workbench.batch import batch_status

    frame = pd.read_parquet(Path(folder) / "results.parquet")
    if "entry" not in frame.columns:  # batches written before entries were named
        frame = frame.assign(entry=frame["analysis"])
    return frame, batch_status(folder)


@st.cache_data(show_spinner=False, max_entries=4)
def csv_of(folder: str, mtime: float) -> bytes:
    """The whole batch as CSV (made once per version of its results, not on every rerun)."""
    return load(folder, mtime)[0].to_csv(index=False).encode()


def pick(label: str, options: list[str], key: str) -> str:
    """A selectbox whose choice lives in the URL under `key` (the first option if none)."""
    return url_selectbox(label, options, key, page=PAGE)


def per_site_figure(
    profile: pd.DataFrame, step: int, first: int, metrics: list[str], wrap: int, title: str
):
    """A panel per metric of `profile` (`workbench.batch.scrub.layer_profile`): the value over
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


def curve_figure(curve: pd.DataFrame, step: int, title: str):
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


st.title("Batch results")
st.caption(
    "Analyses run by `workbench batch run SPEC` over models, checkpoints, datasets and sites; "
    f"one row per cell x metric in `results.parquet`. Runs directory: `{root}`"
)
batches = [str(folder.relative_to(root)) for folder in batch_folders(root)]
if not batches:
    st.info(f"No batch results under `{root}`. Run `workbench demo` or `workbench batch run SPEC`.")
    st.stop()
choice = pick("Batch", batches, "batch")
folder = root / choice
results_mtime = (folder / "results.parquet").stat().st_mtime
frame, status = load(str(folder), results_mtime)
spec_text = json.loads((folder / "plan.json").read_text()).get("spec", "")
st.write(
    f"**{status['name']}**: {status['done']} done, {status['failed']} failed, "
    f"{status['pending']} pending of {status['cells']} cells; {len(frame)} rows."
)
if frame.empty:
    st.warning("This batch has no finished cells yet.")
    st.stop()
batch = status["name"]  # names the exported files

single = frame.groupby(["cell", "metric"])["value"].transform("size") == 1
scalar = frame[single & pd.to_numeric(frame["value"], errors="coerce").notna()]
left, right, third = st.columns(3)
with left:
    analysis = pick("Analysis (spec entry)", list(dict.fromkeys(frame["entry"])), "analysis")
rows = scalar[scalar["entry"] == analysis]
metrics = list(dict.fromkeys(rows["metric"])) or sorted(
    frame[frame["entry"] == analysis]["metric"].unique()
)
with right:
    metric = pick("Metric", metrics, "metric")
data = frame[(frame["entry"] == analysis) & (frame["metric"] == metric)].copy()
data["value"] = pd.to_numeric(data["value"], errors="coerce")
models = sorted(data["model"].unique())
with third:
    model = pick("Model", models, "model")
data = data[data["model"] == model]
data["series"] = data["dataset"] + " " + data["site"]

over_steps = data["step"].notna().any() and data["step"].nunique() > 1
if over_steps:
    shown, x, log = step_axis(data.sort_values("step"))
    fig = px.line(
        shown,
        x=x,
        y="value",
        color="series",
        markers=True,
        title=f"{analysis}: {metric} over training ({model})",
    )
    if log:
        fig.update_xaxes(type="log")
    fig.update_layout(height=420, legend_title_text="")
    show_figure(fig, f"{batch} {analysis} {metric} {model} over training", width="stretch")
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
    show_figure(heat, f"{batch} {analysis} {metric} {model} site x step", width="stretch")
else:
    fig = px.bar(
        data, x="site", y="value", color="dataset", barmode="group", title=f"{analysis}: {metric}"
    )
    fig.update_layout(height=420)
    show_figure(fig, f"{batch} {analysis} {metric} {model}", width="stretch")

scrubbed = rows[(rows["model"] == model) & rows["step"].notna()]
steps = sorted(int(s) for s in scrubbed["step"].unique())
if len(steps) > 1:
    st.subheader("Checkpoint scrubber")
    step = url_select_slider(
        "Checkpoint step",
        steps,
        "step",
        page=PAGE,
        default=lambda wanted: nearest_step(steps, wanted),
    )
    profile = layer_profile(scrubbed, step, reference=steps[0])
    names = list(dict.fromkeys(profile["metric"]))
    main = metric if metric in names else names[0]
    others = [n for n in names if n != main]
    left, right = st.columns(2)
    with left:
        title = f"{analysis}: {main} over sites at step {step} ({model})"
        shown = profile[profile["metric"] == main]
        show_figure(
            per_site_figure(shown, step, steps[0], [main], 1, title),
            f"{batch} {analysis} {main} {model} over sites step {step}",
            width="stretch",
        )
    with right:
        zoo = zoo_root()
        try:
            curve = read_training_curve(curve_path(model, spec_text, [root, zoo], zoo))
        except InputError as exc:
            st.caption(str(exc))
        else:
            if any(c.endswith("loss") or "acc" in c for c in curve.columns):
                title = f"{model} training curve, step {step} marked"
                show_figure(
                    curve_figure(curve, step, title),
                    f"{batch} {model} training curve",
                    width="stretch",
                )
            else:
                st.caption(f"{model}'s training curve has no loss or accuracy: {list(curve)}")
    if others:
        shown = profile[profile["metric"].isin(others)]
        title = f"{analysis}: its other metrics over sites at step {step}"
        fig = per_site_figure(shown, step, steps[0], others, min(4, len(others)), title)
        show_figure(
            fig, f"{batch} {analysis} other metrics {model} over sites step {step}", width="stretch"
        )
    st.caption(f"{analysis} at step {step}, every single-valued metric")
    show_table(
        values_table(profile),
        f"{batch} {analysis} {model} metrics step {step}",
        hide_index=True,
        width="stretch",
    )

st.subheader("Rows")
show_table(
    data.drop(columns=["series"]).dropna(axis=1, how="all"),
    f"{batch} {analysis} {metric} {model} rows",
    hide_index=True,
    width="stretch",
)
st.download_button(
    "Download the whole batch as CSV",
    csv_of(str(folder), results_mtime),
    file_name=f"{status['name']}.csv",
    mime="text/csv",
)
if status["failures"]:
    st.subheader("Failed cells")
    show_table(
        pd.DataFrame(status["failures"]), f"{batch} failed cells", hide_index=True, width="stretch"
    )
with st.expander("Spec"):
    st.code(spec_text, language="yaml")
