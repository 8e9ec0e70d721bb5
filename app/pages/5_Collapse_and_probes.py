"""Neural collapse over training epochs, and linear-probe accuracy per layer with its controls.

Thin: reads finished results under the runs directory (`workbench.analysis.results.list_results`):
`neural-collapse` results with several checkpoints (`analyses.neural_collapse.analyses.over_checkpoints`)
and `probe` results (the `probe` analysis, or `probes.sweep.over_checkpoints`). Every probe
accuracy is drawn beside its control-task accuracy and the majority-class baseline. View state
(which result) lives in the URL's query parameters.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench.analysis.results import Result, list_results
from workbench_app.lib import collapse_view
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.pickers import require, stop_if_empty
from workbench_app.lib.state import url_selectbox
from workbench_app.services.runsdir import inside_runs, runs_root

st.set_page_config(page_title="Workbench: collapse and probes", layout="wide")
root = runs_root()
PAGE = "collapse"  # namespaces its widgets' session state (shared by every page of the app)


@st.cache_data(show_spinner=False)
def load_frame(path: str, mtime: float) -> pd.DataFrame:
    """The tidy frame of the result at `path` (keyed by mtime: a recomputed result is re-read),
    with the label level it read (its params' `label_level`) as a column."""
    result = Result.load(path)
    level = result.params.get("label_level")
    if level is None or "label_level" in result.frame.columns:
        return result.frame
    return result.frame.assign(label_level=level)


def level_caption(frame: pd.DataFrame) -> None:
    """Which label level the results read (token, example, last, given), when they say."""
    if "label_level" in frame.columns:
        levels = sorted({str(v) for v in frame.label_level.dropna()})
        if levels:
            st.caption(f"Label level read: {', '.join(levels)}.")


def frame_of(relative: str) -> pd.DataFrame | None:
    """The frame of one result, or the concatenated frames of every result under a folder
    (`workbench analyze probe --out DIR` writes one result per site under DIR)."""
    path = inside_runs(relative, root)
    if path is None:
        return None
    metas = [path / "result.json"] if (path / "result.json").is_file() else []
    metas = metas or sorted(path.glob("*/result.json"))
    frames = [load_frame(str(m.parent), m.stat().st_mtime) for m in metas]
    return pd.concat(frames, ignore_index=True) if frames else None


def collapse_section(paths: list[str]) -> None:
    st.header("Neural collapse over training")
    st.caption(
        "Papyan, Han & Donoho (2020). NC1 = Tr(Σ_W Σ_B⁺)/C (lower = features closer to their "
        "class means); NC2 = coefficient of variation of the class-mean norms and spread of "
        "their cosines; NC3 = distance between classifier and class means; NC4 = share of "
        "rows where the network disagrees with the nearest class mean."
    )
    choice = url_selectbox("Neural-collapse result", paths, "nc", page=PAGE)
    frame = frame_of(choice)
    if frame is None:
        st.error(f"Cannot read the result `{choice}`.")
        return
    level_caption(frame)
    show_figure(collapse_view.nc1_figure(frame), f"{choice} NC1 over epochs", width="stretch")
    show_figure(
        collapse_view.nc_others_figure(frame),
        f"{choice} NC2-NC4 over epochs",
        width="stretch",
    )


def probe_section(paths: list[str]) -> None:
    st.header("Linear probes per layer")
    st.caption(
        "Test accuracy (95% cluster-bootstrap interval over held-out examples) beside the "
        "Hewitt & Liang control task (random labels per token type; high = the probe can "
        "memorise types) and the majority-class baseline."
    )
    choice = url_selectbox("Probe result", paths, "probe", page=PAGE)
    frame = frame_of(choice)
    if frame is None or "label" not in frame.columns:
        st.error(f"Cannot read the probe result `{choice}`.")
        return
    if "checkpoint_step" not in frame.columns:
        frame = frame.assign(checkpoint_step=None)
    label = st.selectbox("Label", sorted(frame.label.unique()))
    rows = frame[frame.label == label]
    level_caption(rows)
    steps = collapse_view.probe_steps(rows)
    step = st.select_slider("Checkpoint", steps, value=steps[-1]) if len(steps) > 1 else None
    wide = collapse_view.probe_table(rows, step)
    at = "" if step is None else f" step {step}"
    fig = collapse_view.probe_figure(wide, label, step)
    show_figure(fig, f"{choice} {label} accuracy per site{at}", width="stretch")
    if len(steps) > 1:
        fig = collapse_view.probe_training_figure(rows, label)
        show_figure(fig, f"{choice} {label} accuracy over training", width="stretch")
    show_table(wide.reset_index(), f"{choice} {label} probe metrics per site{at}", hide_index=True)


st.title("Neural collapse and probes")
stop_if_empty(root)
results = list_results(root)
collapse_paths = collapse_view.collapse_series(
    [r["path"] for r in results if r["analysis"] == "neural-collapse"], frame_of
)
probe_paths = collapse_view.probe_sets(
    [r["path"] for r in results if r["analysis"] == "probe"], frame_of
)
require(
    collapse_paths + probe_paths,
    f"No neural-collapse series or probe results under `{root}` yet. Make them with, e.g., "
    "`over_checkpoints('digits-mlp').save(RUNS / 'results/neural-collapse/digits-mlp')` "
    "(`analyses.neural_collapse.analyses`), `over_checkpoints('toy-lm').save(RUNS / "
    "'results/probe/toy-lm')` (`probes.sweep`), or `workbench analyze probe --store DIR "
    "--label NAME --out RUNS/results/probe/NAME`.",
)
if collapse_paths:
    collapse_section(collapse_paths)
if probe_paths:
    probe_section(probe_paths)
