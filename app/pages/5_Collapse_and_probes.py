"""Neural collapse over training epochs, and linear-probe accuracy per layer with its controls.

Thin: reads finished results under the runs directory (`workbench.results.list_results`):
`neural-collapse` results with several checkpoints (`analyses.neural_collapse.over_checkpoints`)
and `probe` results (the `probe` analysis, or `probes.sweep.over_checkpoints`). Every probe
accuracy is drawn beside its control-task accuracy and the majority-class baseline. View state
(which result) lives in the URL's query parameters.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from workbench.app_export import show_figure, show_table
from workbench.app_state import url_selectbox
from workbench.results import Result, list_results
from workbench.runsdir import inside_runs, runs_root

st.set_page_config(page_title="Workbench: collapse and probes", layout="wide")
root = runs_root()
PAGE = "collapse"  # namespaces its widgets' session state (shared by every page of the app)


@st.cache_data(show_spinner=False)
def load_frame(path: str, mtime: float) -> pd.DataFrame:
    """The tidy frame of the result at `path` (keyed by mtime: a recomputed result is re-read)."""
    return Result.load(path).frame


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


def probe_sets(paths: list[str]) -> list[str]:
    """Probe results to offer: a result covering several sites as itself, single-site results
    grouped by their folder."""
    sets = []
    for path in paths:
        frame = frame_of(path)
        one_site = frame is not None and frame.get("site", pd.Series()).nunique() <= 1
        key = str(PurePosixPath(path).parent) if one_site else path
        if key not in sets:
            sets.append(key)
    return sets


def pick(label: str, options: list[str], key: str) -> str:
    """A selectbox whose choice lives in the URL under `key` (the first option if none)."""
    return url_selectbox(label, options, key, page=PAGE)


def collapse_section(paths: list[str]) -> None:
    st.header("Neural collapse over training")
    st.caption(
        "Papyan, Han & Donoho (2020). NC1 = Tr(Σ_W Σ_B⁺)/C (lower = features closer to their "
        "class means); NC2 = coefficient of variation of the class-mean norms and spread of "
        "their cosines; NC3 = distance between classifier and class means; NC4 = share of "
        "rows where the network disagrees with the nearest class mean."
    )
    choice = pick("Neural-collapse result", paths, "nc")
    frame = frame_of(choice)
    if frame is None:
        st.error(f"Cannot read the result `{choice}`.")
        return
    nc1 = frame[frame.metric == "nc1"]
    fig = px.line(nc1, x="checkpoint_step", y="value", color="site", markers=True, log_y=True)
    fig.update_layout(title="NC1 per layer over epochs", xaxis_title="epoch", yaxis_title="NC1")
    show_figure(fig, f"{choice} NC1 over epochs", use_container_width=True)
    last_site = frame.site.iloc[-1]
    others = frame[(frame.site == last_site) & frame.metric.isin(
        ["nc2_equinorm", "nc2_equiangular", "nc2_max_angle", "nc3", "nc4"]
    )]  # fmt: skip
    fig = px.line(others, x="checkpoint_step", y="value", color="metric", markers=True)
    fig.update_layout(
        title=f"NC2-NC4 at the classifier's input ({last_site})",
        xaxis_title="epoch",
        yaxis_title="value",
    )
    show_figure(fig, f"{choice} NC2-NC4 over epochs", use_container_width=True)


def probe_section(paths: list[str]) -> None:
    st.header("Linear probes per layer")
    st.caption(
        "Test accuracy (95% cluster-bootstrap interval over held-out examples) beside the "
        "Hewitt & Liang control task (random labels per token type; high = the probe can "
        "memorise types) and the majority-class baseline."
    )
    choice = pick("Probe result", paths, "probe")
    frame = frame_of(choice)
    if frame is None or "label" not in frame.columns:
        st.error(f"Cannot read the probe result `{choice}`.")
        return
    if "checkpoint_step" not in frame.columns:
        frame = frame.assign(checkpoint_step=None)
    label = st.selectbox("Label", sorted(frame.label.unique()))
    rows = frame[frame.label == label]
    steps = sorted(s for s in rows.checkpoint_step.dropna().unique())
    step = st.select_slider("Checkpoint", steps, value=steps[-1]) if len(steps) > 1 else None
    at_step = rows if step is None else rows[rows.checkpoint_step == step]
    wide = at_step.pivot_table(index="site", columns="metric", values="value", sort=False)
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
    at = "" if step is None else f" step {step}"
    show_figure(fig, f"{choice} {label} accuracy per site{at}", use_container_width=True)
    if len(steps) > 1:
        acc = rows[rows.metric == "accuracy"]
        fig = px.line(acc, x="checkpoint_step", y="value", color="site", markers=True, log_x=True)
        fig.update_layout(title=f"{label}: probe accuracy over training", xaxis_title="step (log)")
        show_figure(fig, f"{choice} {label} accuracy over training", use_container_width=True)
    show_table(wide.reset_index(), f"{choice} {label} probe metrics per site{at}", hide_index=True)


st.title("Neural collapse and probes")
results = list_results(root)
collapse_paths = [r["path"] for r in results if r["analysis"] == "neural-collapse"]
collapse_paths = [p for p in collapse_paths if (f := frame_of(p)) is not None
                  and f.get("checkpoint_step", pd.Series()).nunique() > 1]  # fmt: skip
probe_paths = probe_sets([r["path"] for r in results if r["analysis"] == "probe"])
if not collapse_paths and not probe_paths:
    st.info(
        f"No neural-collapse series or probe results under `{root}` yet. Make them with, e.g., "
        "`over_checkpoints('digits-mlp').save(RUNS / 'results/neural-collapse/digits-mlp')` "
        "(`analyses.neural_collapse`), `over_checkpoints('toy-lm').save(RUNS / "
        "'results/probe/toy-lm')` (`probes.sweep`), or `workbench analyze probe --store DIR "
        "--label NAME --out RUNS/results/probe/NAME`."
    )
    st.stop()
if collapse_paths:
    collapse_section(collapse_paths)
if probe_paths:
    probe_section(probe_paths)
