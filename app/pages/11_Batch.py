"""Batch page: the results of a `workbench batch` run (its `results.parquet`) over checkpoints and
layers: one metric over training steps with a line per site, the same as a site x step heatmap,
the cells' status with their errors, and the tidy frame as CSV. View state (batch, analysis,
metric) lives in the URL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from workbench.runsdir import runs_root

st.set_page_config(page_title="Workbench: batch", layout="wide")
root = runs_root()


def find_batches(root: Path, max_depth: int = 4) -> list[str]:
    """Folders under `root` holding a batch's plan.json and results.parquet, relative to root."""
    found = []
    for plan in sorted(root.glob("**/plan.json")):
        folder = plan.parent
        relative = folder.relative_to(root)
        if len(relative.parts) <= max_depth and (folder / "results.parquet").is_file():
            found.append(str(relative))
    return found


@st.cache_data(show_spinner="reading results...")
def load(folder: str, mtime: float) -> tuple[pd.DataFrame, dict]:
    """The batch's tidy frame and status (keyed by the parquet's time: a rerun reloads)."""
    from workbench.batch import batch_status

    return pd.read_parquet(Path(folder) / "results.parquet"), batch_status(folder)


def pick(label: str, options: list[str], key: str) -> str:
    """A selectbox whose choice lives in the URL under `key`."""
    wanted = st.query_params.get(key, options[0])
    choice = st.selectbox(label, options, index=options.index(wanted) if wanted in options else 0)
    st.query_params[key] = choice
    return choice


st.title("Batch results")
st.caption(
    "Analyses run by `workbench batch run SPEC` over models, checkpoints, datasets and sites; "
    f"one row per cell x metric in `results.parquet`. Runs directory: `{root}`"
)
batches = find_batches(root)
if not batches:
    st.info(f"No batch results under `{root}`. Run `workbench demo` or `workbench batch run SPEC`.")
    st.stop()
choice = pick("Batch", batches, "batch")
folder = root / choice
frame, status = load(str(folder), (folder / "results.parquet").stat().st_mtime)
st.write(
    f"**{status['name']}**: {status['done']} done, {status['failed']} failed, "
    f"{status['pending']} pending of {status['cells']} cells; {len(frame)} rows."
)
if frame.empty:
    st.warning("This batch has no finished cells yet.")
    st.stop()

if "entry" not in frame.columns:  # batches written before entries were named
    frame = frame.assign(entry=frame["analysis"])
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
    from workbench.batch.report import step_axis

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
    st.plotly_chart(fig, width="stretch")
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
    st.plotly_chart(heat, width="stretch")
else:
    fig = px.bar(
        data, x="site", y="value", color="dataset", barmode="group", title=f"{analysis}: {metric}"
    )
    fig.update_layout(height=420)
    st.plotly_chart(fig, width="stretch")

st.subheader("Rows")
st.dataframe(
    data.drop(columns=["series"]).dropna(axis=1, how="all"), hide_index=True, width="stretch"
)
st.download_button(
    "Download the whole batch as CSV",
    frame.to_csv(index=False).encode(),
    file_name=f"{status['name']}.csv",
    mime="text/csv",
)
if status["failures"]:
    st.subheader("Failed cells")
    st.dataframe(pd.DataFrame(status["failures"]), hide_index=True, width="stretch")
spec_text = json.loads((folder / "plan.json").read_text()).get("spec", "")
with st.expander("Spec"):
    st.code(spec_text, language="yaml")
