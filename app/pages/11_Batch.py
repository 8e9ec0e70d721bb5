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
import streamlit as st

from workbench.errors import InputError
from workbench.zoo import zoo_root
from workbench_app.lib import batch_view, scrub
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.overview import batch_folders
from workbench_app.lib.pickers import require, stop_if_empty
from workbench_app.lib.state import url_select_slider, url_selectbox
from workbench_app.services.runsdir import runs_root

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


st.title("Batch results")
st.caption(
    "Analyses run by `workbench batch run SPEC` over models, checkpoints, datasets and sites; "
    f"one row per cell x metric in `results.parquet`. Runs directory: `{root}`"
)
stop_if_empty(root)
batches = require(
    [str(folder.relative_to(root)) for folder in batch_folders(root)],
    f"No batch results under `{root}`. Run `workbench demo` or `workbench batch run SPEC`.",
)
choice = url_selectbox("Batch", batches, "batch", page=PAGE)
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

scalar = batch_view.scalar_rows(frame)
left, right, third = st.columns(3)
entries = list(dict.fromkeys(frame["entry"]))
analysis = url_selectbox("Analysis (spec entry)", entries, "analysis", page=PAGE, container=left)
rows = scalar[scalar["entry"] == analysis]
metrics = batch_view.metric_choices(frame, scalar, analysis)
metric = url_selectbox("Metric", metrics, "metric", page=PAGE, container=right)
data = batch_view.metric_rows(frame, analysis, metric)
models = sorted(data["model"].unique())
model = url_selectbox("Model", models, "model", page=PAGE, container=third)
data = data[data["model"] == model]

view = f"{batch} {analysis} {metric} {model}"  # names the exported files
if batch_view.over_steps(data):
    fig = batch_view.over_training_figure(data, f"{analysis}: {metric} over training ({model})")
    show_figure(fig, f"{view} over training", width="stretch")
    show_figure(batch_view.site_step_figure(data, metric), f"{view} site x step", width="stretch")
else:
    show_figure(batch_view.bars_figure(data, f"{analysis}: {metric}"), view, width="stretch")

scrubbed = rows[(rows["model"] == model) & rows["step"].notna()]
steps = sorted(int(s) for s in scrubbed["step"].unique())
if len(steps) > 1:
    st.subheader("Checkpoint scrubber")
    step = url_select_slider(
        "Checkpoint step",
        steps,
        "step",
        page=PAGE,
        default=lambda wanted: scrub.nearest_step(steps, wanted),
    )
    profile = scrub.layer_profile(scrubbed, step, reference=steps[0])
    names = list(dict.fromkeys(profile["metric"]))
    main = metric if metric in names else names[0]
    others = [n for n in names if n != main]
    left, right = st.columns(2)
    with left:
        title = f"{analysis}: {main} over sites at step {step} ({model})"
        shown = profile[profile["metric"] == main]
        show_figure(
            batch_view.per_site_figure(shown, step, steps[0], [main], 1, title),
            f"{batch} {analysis} {main} {model} over sites step {step}",
            width="stretch",
        )
    with right:
        zoo = zoo_root()
        try:
            curve = scrub.read_training_curve(scrub.curve_path(model, spec_text, [root, zoo], zoo))
        except InputError as exc:
            st.caption(str(exc))
        else:
            if batch_view.has_training_metrics(curve):
                title = f"{model} training curve, step {step} marked"
                show_figure(
                    batch_view.curve_figure(curve, step, title),
                    f"{batch} {model} training curve",
                    width="stretch",
                )
            else:
                st.caption(f"{model}'s training curve has no loss or accuracy: {list(curve)}")
    if others:
        shown = profile[profile["metric"].isin(others)]
        title = f"{analysis}: its other metrics over sites at step {step}"
        fig = batch_view.per_site_figure(shown, step, steps[0], others, min(4, len(others)), title)
        show_figure(
            fig, f"{batch} {analysis} other metrics {model} over sites step {step}", width="stretch"
        )
    st.caption(f"{analysis} at step {step}, every single-valued metric")
    show_table(
        scrub.values_table(profile),
        f"{batch} {analysis} {model} metrics step {step}",
        hide_index=True,
        width="stretch",
    )

st.subheader("Rows")
show_table(
    data.drop(columns=["series"]).dropna(axis=1, how="all"),
    f"{view} rows",
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
