"""Landscape page: the intrinsic dimension of objective landscapes (Li et al. 2018).

Reads `intrinsic-dim` results saved under the runs directory (by `workbench intrinsic-dim
--out runs/intrinsic-dim/...`); nothing trains inside a page rerun. Shows performance vs d with
the baseline, the 90% line and d_int90, the runs table, and d_int90 against D across results
(the paper's width comparison). The chosen result lives in the URL (`?result=PATH`).
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from analyses.landscape.figures import performance_figure
from workbench.app_export import show_figure, show_table
from workbench.app_state import url_selectbox
from workbench.errors import WorkbenchError
from workbench.results import Result, list_results
from workbench.runsdir import inside_runs, runs_root

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
found = [r for r in list_results(root) if r["analysis"] == "intrinsic-dim"]
if not found:
    st.info(
        f"No intrinsic-dimension results under `{root}` yet. Run for example "
        f"`workbench intrinsic-dim --model digits-mlp --dims 10,50,100,200,400 "
        f"--out {root}/intrinsic-dim/digits-mlp`."
    )
    st.stop()

paths = [r["path"] for r in found]
choice = url_selectbox("Result", paths, "result", page=PAGE)
folder = inside_runs(choice, root)
if folder is None:
    st.error("That result is outside the runs directory.")
    st.stop()
try:
    result = load_result(str(folder), (folder / "result.json").stat().st_mtime)
except (WorkbenchError, OSError, ValueError, KeyError) as exc:
    st.error(f"Cannot read the result `{choice}`: {exc}")
    st.stop()

head = result.headline
cols = st.columns(5)
cols[0].metric("model", str(head.get("model")))
cols[1].metric("D (parameters)", f"{head['D']:,}")
cols[2].metric("d_int90", "not reached" if head["d_int90"] is None else f"{head['d_int90']:,}")
cols[3].metric(f"baseline ({head['baseline_kind']})", f"{head['baseline']:.4f}")
cols[4].metric("projection", str(head.get("projection")))
if head["d_int90"] is None:
    st.warning(f"No d in this sweep passed {head['threshold90']:.4f}: extend --dims upwards.")
show_figure(performance_figure(result), f"{choice} performance vs d")

with st.expander("Runs (one row per d and seed)"):
    table = result.frame.pivot_table(
        index=["projection", "d", "seed"], columns="metric", values="value"
    ).reset_index()
    show_table(table, f"{choice} runs", hide_index=True)
    st.json({"settings": result.params, "provenance": result.provenance})

summary = pd.DataFrame(
    [
        {
            "result": r["path"],
            "model": r["headline"].get("model"),
            "D": r["headline"].get("D"),
            "d_int90": r["headline"].get("d_int90"),
            "baseline": r["headline"].get("baseline"),
            "projection": r["headline"].get("projection"),
        }
        for r in found
    ]
)
reached = summary.dropna(subset=["d_int90"])
if len(reached) >= 2:
    st.subheader("d_int90 against D across results")
    st.caption(
        "Li et al. find d_int90 nearly constant while the width of an MLP changes D many-fold."
    )
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
    show_figure(fig, "d_int90 vs D across results")
show_table(summary, "intrinsic-dimension results", hide_index=True)
