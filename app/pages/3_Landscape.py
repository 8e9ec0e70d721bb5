"""Landscape page: the intrinsic dimension of objective landscapes (Li et al. 2018).

Reads `intrinsic-dim` results saved under the runs directory (by `workbench landscape-dim
--out runs/intrinsic-dim/...`); nothing trains inside a page rerun. Shows performance vs d with
the baseline, the 90% line and d_int90, the runs table, and d_int90 against D across results
(the paper's width comparison). The chosen result lives in the URL (`?result=PATH`).
"""

from __future__ import annotations

import streamlit as st

from analyses.landscape.figures import performance_figure
from workbench.analysis.results import Result, list_results
from workbench.errors import WorkbenchError
from workbench_app.lib import landscape_view
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.pickers import inside_or_stop, require, stop_if_empty
from workbench_app.lib.state import url_selectbox
from workbench_app.services.runsdir import runs_root

st.set_page_config(page_title="Workbench: landscape", layout="wide")
root = runs_root()
PAGE = "landscape"  # namespaces its widgets' session state (shared by every page of the app)


@st.cache_data(show_spinner=False)
def load_result(path: str, mtime: float) -> Result:
    """A saved result (keyed by its JSON's mtime, so a re-run is re-read)."""
    return Result.load(path)


st.title("Objective landscape: intrinsic dimension")
st.caption(
    "Training in a random d-dimensional subspace, theta = theta_0 + P theta_d (Li, Farkhoor, "
    "Liu & Yosinski 2018). d_int90 is the first d whose mean score over seeds is strictly "
    "greater than 90% of the baseline."
)
stop_if_empty(root)
found = require(
    [r for r in list_results(root) if r["analysis"] == "intrinsic-dim"],
    f"No intrinsic-dimension results under `{root}` yet. Run for example "
    f"`workbench landscape-dim --model digits-mlp --dims 10,50,100,200,400 "
    f"--out {root}/intrinsic-dim/digits-mlp`.",
)
choice = url_selectbox("Result", [r["path"] for r in found], "result", page=PAGE)
folder = inside_or_stop(choice, root, "result")
try:
    result = load_result(str(folder), (folder / "result.json").stat().st_mtime)
except (WorkbenchError, OSError, ValueError, KeyError) as exc:
    st.error(f"Cannot read the result `{choice}`: {exc}")
    st.stop()

head = result.headline
for column, (label, value) in zip(
    st.columns(5), landscape_view.headline_metrics(head), strict=True
):
    column.metric(label, value)
if head["d_int90"] is None:
    st.warning(f"No d in this sweep passed {head['threshold90']:.4f}: extend --dims upwards.")
show_figure(performance_figure(result), f"{choice} performance vs d")

with st.expander("Runs (one row per d and seed)"):
    show_table(landscape_view.runs_table(result.frame), f"{choice} runs", hide_index=True)
    st.json({"settings": result.params, "provenance": result.provenance})

summary = landscape_view.results_summary(found)
fig = landscape_view.width_figure(summary)
if fig is not None:
    st.subheader("d_int90 against D across results")
    st.caption(
        "Li et al. find d_int90 nearly constant while the width of an MLP changes D many-fold."
    )
    show_figure(fig, "d_int90 vs D across results")
show_table(summary, "intrinsic-dimension results", hide_index=True)
