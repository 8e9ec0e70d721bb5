"""Similarity page: layer x layer map of a store, checkpoint x layer convergence of a checkpoint
series, and model x model (two stores of the same datapoints).

Thin: the maps come from `analyses.similarity_maps` (each layer decomposed once), cached with
`st.cache_data` keyed by the store paths, their manifests' mtimes and the measure. A checkpoint
series is any folder of the runs dir holding two or more complete stores named `step<N>` (what
`similarity_maps.capture_checkpoints` writes). View state lives in the URL's query parameters.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import plotly.express as px
import streamlit as st

from workbench.app_state import url_selectbox
from workbench.errors import WorkbenchError
from workbench.runsdir import inside_runs, runs_root
from workbench.store import ActivationStore, list_stores

MEASURES = ["svcca", "cca", "pwcca", "cka", "procrustes"]
STEP = re.compile(r"^step(\d+)$")

st.set_page_config(page_title="Workbench: similarity", layout="wide")
root = runs_root()
PAGE = "similarity"  # namespaces its widgets' session state (shared by every page of the app)


def _mtime(relative: str) -> float:
    path = inside_runs(relative, root)
    return (path / "manifest.json").stat().st_mtime if path is not None else 0.0


def _open(relative: str) -> ActivationStore:
    path = inside_runs(relative, root)
    if path is None:
        raise WorkbenchError(f"store {relative!r} is outside the runs directory")
    return ActivationStore(path)


@st.cache_data(show_spinner="decomposing layers...")
def layer_matrix(relative: str, mtime: float, measure: str) -> dict:
    from analyses.similarity_maps import layer_map

    headline = layer_map(_open(relative), measure=measure).headline
    return {**headline, "x": headline["sites_b"], "y": headline["sites_a"]}


@st.cache_data(show_spinner="comparing checkpoints...")
def checkpoint_matrix(stores: tuple[tuple[int, str], ...], mtimes: tuple, measure: str) -> dict:
    from analyses.similarity_maps import checkpoint_map

    headline = checkpoint_map({s: _open(rel) for s, rel in stores}, measure=measure).headline
    return {**headline, "x": headline["sites"], "y": headline["steps"]}


@st.cache_data(show_spinner="comparing models...")
def cross_matrix(a: str, b: str, mtimes: tuple, measure: str) -> dict:
    from analyses.similarity_maps import cross_map

    headline = cross_map(_open(a), _open(b), measure=measure).headline
    return {**headline, "x": headline["sites_b"], "y": headline["sites_a"]}


def show_map(compute, failure: str, title: str, axes: tuple[str, str], report=st.error):
    """Compute a map (a headline with `matrix`, `x` and `y` labels) and draw it as a heatmap;
    a WorkbenchError is shown with `report` instead. Returns the headline or None."""
    try:
        result = compute()
    except WorkbenchError as exc:
        report(f"{failure}: {exc}")
        return None
    fig = px.imshow(
        np.array(result["matrix"], dtype=float),
        x=[str(v) for v in result["x"]],
        y=[str(v) for v in result["y"]],
        zmin=0,
        zmax=1,
        aspect="auto",
        color_continuous_scale="Viridis",
        labels={"color": measure},
        text_auto=".2f",
        title=title,
    )
    fig.update_xaxes(title=axes[0], type="category")
    fig.update_yaxes(title=axes[1], type="category")
    st.plotly_chart(fig)
    return result


def pick(label: str, options: list[str], key: str, default: int = 0, **kwargs) -> str:
    """A selectbox whose choice lives in the URL under `key` (option `default` if none)."""
    fallback = options[min(default, len(options) - 1)] if options else None
    return url_selectbox(label, options, key, page=PAGE, default=fallback, **kwargs)


st.title("Representation similarity")
st.caption(
    "SVCCA keeps the top singular directions explaining 99% of each layer's variance, then CCA "
    "(mean canonical correlation); PWCCA weights the correlations by projection; CKA is linear "
    "CKA; procrustes is the nuclear-norm similarity of the normalised layers. 1 = identical up "
    "to the measure's invariances."
)
found = list_stores(root)
complete = sorted(str(Path(s["path"]).resolve().relative_to(root)) for s in found if s["complete"])
if not complete:
    st.info(f"No complete stores under `{root}` yet. Run `workbench demo` first.")
    st.stop()
measure = pick("Measure", MEASURES, "measure")

st.subheader("Layer x layer")
store = pick("Store", complete, "store")
show_map(
    lambda: layer_matrix(store, _mtime(store), measure),
    f"Cannot compare the layers of `{store}`",
    f"{measure}: every layer of {store} against every layer",
    ("site", "site"),
)

series: dict[str, list[tuple[int, str]]] = {}
for relative in complete:
    match = STEP.match(Path(relative).name)
    if match:
        series.setdefault(str(Path(relative).parent), []).append((int(match.group(1)), relative))
series = {k: sorted(v) for k, v in series.items() if len(v) >= 2}
st.subheader("Checkpoints x layers: convergence to the final checkpoint")
if not series:
    st.info(
        "No checkpoint series in the runs dir (a folder of stores named step<N>); capture one "
        "with `analyses.similarity_maps.capture_checkpoints` (see notebooks/similarity.ipynb)."
    )
else:
    name = pick("Checkpoint series", sorted(series), "series")
    steps = tuple(series[name])
    conv = show_map(
        lambda: checkpoint_matrix(steps, tuple(_mtime(r) for _, r in steps), measure),
        f"Cannot compare the checkpoints of `{name}`",
        f"{measure}: each checkpoint's layer vs the same layer at the last step",
        ("site", "training step"),
    )
    if conv is not None:
        lines = [
            {"step": s, "site": site, measure: conv["matrix"][i][j]}
            for i, s in enumerate(conv["steps"])
            for j, site in enumerate(conv["sites"])
        ]
        fig = px.line(
            lines,
            x="step",
            y=measure,
            color="site",
            markers=True,
            log_x=True,
            title="Similarity to the final state over training (log step; step 0 not shown)",
        )
        st.plotly_chart(fig)

st.subheader("Model x model")
cols = st.columns(2)
with cols[0]:
    a = pick("Store A", complete, "a")
with cols[1]:
    b = pick("Store B", complete, "b", default=1)
show_map(
    lambda: cross_matrix(a, b, (_mtime(a), _mtime(b)), measure),
    f"`{a}` and `{b}` cannot be compared row by row",
    f"{measure}: layers of {a} (rows) vs {b} (columns)",
    (f"site of {b}", f"site of {a}"),
    report=st.info,
)
