"""Massive activations: |a| over (position x dimension) of one example at one layer, the top
entries with their dims and tokens, the statistics through depth, and (from a tracking job's
folder `<runs>/massive/<name>/`) the trajectory over checkpoints with its fitted curve and the
ablation result.

Thin: `analyses.massive` computes (`trajectory.fit_layers` fits the curves),
`workbench_app.lib.massive_view` shapes and draws. View state (store, site, example, job) in
the URL's query parameters. Tracking loads every checkpoint, so it runs as a job outside the
page: `workbench massive track toy-lm --out <runs>/massive/toy-lm`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from analyses.massive.analyses import Params, detect, token_decoder
from analyses.massive.track import ablation_summary
from analyses.massive.trajectory import fit_layers
from workbench.analysis.sources import Source
from workbench.errors import WorkbenchError
from workbench.store import ActivationStore
from workbench_app.lib import massive_view, pickers
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.state import url_number_input, url_selectbox
from workbench_app.services.runsdir import runs_root

st.set_page_config(page_title="Workbench: massive activations", layout="wide")
root = runs_root()
PAGE = "massive"  # namespaces its widgets' session state (shared by every page of the app)


@st.cache_data(show_spinner="searching for massive activations...")
def site_summary(path: str, mtime: float, site: str) -> dict:
    """The `massive` summary of one store site (keyed by the manifest's mtime)."""
    store = ActivationStore(path)
    return detect(Source.from_store(store, site), Params())


@st.cache_data(show_spinner=False)
def example_rows(path: str, mtime: float, site: str, example: int) -> tuple[np.ndarray, list[str]]:
    """(positions, d) |a| of one example's rows in position order, and position labels."""
    store = ActivationStore(path)
    rows = np.flatnonzero(store.example_index() == example)
    rows = rows[np.argsort(store.positions()[rows], kind="stable")]
    values = np.abs(store.read(site, rows))
    tokens = store.token_ids()[rows]
    decode = token_decoder("auto", store)
    labels = [
        f"{p}:{decode(int(t)) if decode and t >= 0 else t}"
        for p, t in zip(store.positions()[rows], tokens, strict=True)
    ]
    return values, labels


@st.cache_data(show_spinner="fitting trajectories...")
def fitted(path: str, mtime: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tracked frame's per-layer exp-log fits (R^2, peak step) and curves."""
    return fit_layers(pd.read_parquet(f"{path}/trajectory.parquet"))


st.title("Massive activations")
st.caption(
    "Sun et al. 2024: an activation is massive if |a| > 100 and > 1000x the median |a| of its "
    "hidden state; small models rarely pass the absolute part, so both parts are counted apart."
)
pickers.stop_if_empty(root)
store = pickers.pick_store(root, pickers.complete_stores(root), page=PAGE)
choice, path, mtime = store.name, str(store.path), store.mtime
site = url_selectbox("Site", store.sites, "site", page=PAGE, default=store.sites[-1])
try:
    summary = site_summary(path, mtime, site)
except WorkbenchError as exc:
    st.error(f"Cannot analyse `{choice}` / `{site}`: {exc}")
    st.stop()

for column, (label, value) in zip(
    st.columns(5), massive_view.headline_metrics(summary), strict=True
):
    column.metric(label, value)

st.subheader("|a| over position x dimension")
n_examples = int(summary["n_examples"])
example = url_number_input(
    "Example", "example", page=PAGE, default=0, min_value=0, max_value=max(0, n_examples - 1)
)
values, labels = example_rows(path, mtime, site, example)
show_figure(
    massive_view.example_figure(values, labels, f"{site}, example {example}"),
    f"{choice} {site} example {example} abs activations",
)

left, right = st.columns(2)
left.markdown("**Largest |a|**")
show_table(
    massive_view.top_table(summary),
    f"{choice} {site} largest activations",
    container=left,
    hide_index=True,
)
dims = massive_view.recurring_dims_figure(summary)
if dims is not None:
    show_figure(dims, f"{choice} {site} recurring massive dims", container=right)
st.caption(massive_view.carriers_caption(summary))

st.subheader("Through depth")
depth = massive_view.depth_table({name: site_summary(path, mtime, name) for name in store.sites})
show_figure(massive_view.depth_figure(depth), f"{choice} massive activations through depth")

st.subheader("Over training, and what they do")
jobs_root = root / "massive"
jobs = pickers.require(
    massive_view.tracking_jobs(jobs_root),
    "No tracking job yet. Run `workbench massive track toy-lm --out "
    f"{jobs_root}/toy-lm` (captures every checkpoint, fits the curves, ablates).",
)
job = url_selectbox("Tracking job", jobs, "job", page=PAGE)
folder = jobs_root / job
trajectory = pd.read_parquet(folder / "trajectory.parquet")
fits, curves = fitted(str(folder), (folder / "trajectory.parquet").stat().st_mtime)
title = f"{job}: max/median ratio per layer, fit A e^(-lambda x) log x + K"
show_figure(
    massive_view.trajectory_figure(trajectory, curves, title), f"{job} massive ratio over training"
)
show_table(fits, f"{job} massive ratio fits", hide_index=True)

losses = pd.read_parquet(folder / "ablation.parquet")
table = ablation_summary(losses)
site_name = str(losses["site"].iloc[0])
show_figure(massive_view.ablation_figure(table, site_name), f"{job} ablation at {site_name}")
show_table(table, f"{job} ablation summary at {site_name}", hide_index=True)
entries = pd.read_parquet(folder / "entries.parquet")
with st.expander("Ablated massive entries"):
    show_table(entries, f"{job} ablated massive entries", hide_index=True)
