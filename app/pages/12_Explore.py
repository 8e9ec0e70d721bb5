"""Explore page: a map of one site's activations (PCA or UMAP of sampled rows, coloured by any
label) whose box or lasso selection drives the other panels: how many rows, which label values
the selection is rich in, the units that set it apart (Cohen's d), and the selected tokens in
context. A second store holding the same rows (another checkpoint or model on the same data)
can be mapped side by side, the selection linked across both maps.

Thin: `analyses.explore.api` does the work, `workbench_app.lib.explore_view` draws it. The whole view (store, site, map, colour, points, seed,
selection) lives in the URL, the selection as compact row ranges (`sel=0-4,9`), so a copied link
reproduces it; a selection from a link is drawn as ringed points.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from analyses.explore.api import (
    contexts,
    decode_rows,
    project,
    row_labels,
    sample_rows,
    selection_panels,
)
from workbench.data.tokens import store_decoder
from workbench.errors import WorkbenchError
from workbench.store import ActivationStore
from workbench_app.lib import explore_view, state
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.pickers import complete_stores, pick_store, stop_if_empty
from workbench_app.services.runsdir import inside_runs, runs_root

st.set_page_config(page_title="Workbench: explore", layout="wide")
root = runs_root()
PAGE = "explore"  # namespaces its widgets' session state (shared by every page of the app)
POINTS = [500, 1000, 2000, 5000]
MAX_CONTEXTS = 50


@st.cache_resource(show_spinner=False, max_entries=16)
def open_store(path: str, mtime: float) -> ActivationStore:
    """One reader per version of a store, shared by this page's functions and sessions (it is
    read-only and keeps the row arrays it has read: token ids, examples, positions)."""
    return ActivationStore(path)


@st.cache_data(show_spinner="reading and mapping activations...", max_entries=16)
def mapped(path: str, mtime: float, site: str, method: str, n_points: int, seed: int):
    """Sampled row ids (n,), their activations (n, d) float32 and the (n, 2) map; keyed by the
    manifest's mtime so a re-captured store is re-read."""
    store = open_store(path, mtime)
    rows = sample_rows(store.n_rows, n_points, seed)
    acts = store.read(site, rows, dtype=np.float32)
    coords, info = project(acts, method, seed)
    return rows, acts, coords, info


@st.cache_data(show_spinner=False, max_entries=16)
def labels_of(path: str, mtime: float) -> dict[str, np.ndarray]:
    return row_labels(open_store(path, mtime))


@st.cache_data(show_spinner=False, max_entries=16)
def rows_match(path_a: str, mtime_a: float, path_b: str, mtime_b: float) -> bool:
    """Whether two stores hold the same rows (`same_rows`), once per version of each."""
    return explore_view.same_rows(open_store(path_a, mtime_a), open_store(path_b, mtime_b))


def show_map(fig, name: str, key: str = "map") -> None:
    """The map `fig` whose box or lasso selection replaces the URL's `sel`."""
    on_select = partial(state.url_selection, "sel", key, explore_view.encode_selection)
    show_figure(fig, name, key=key, on_select=on_select, selection_mode=("box", "lasso"))


st.title("Explore activations")
st.caption(
    "Select points on the map (box or lasso); every panel below follows the selection, and the "
    f"URL keeps it. Runs directory: `{root}`"
)
stop_if_empty(root)
names = complete_stores(root)
c1, c2, c3, c4, c5 = st.columns([3, 3, 1, 2, 1])
store = pick_store(root, names, page=PAGE, container=c1)
choice, path, mtime = store.name, str(store.path), store.mtime
site = state.url_selectbox(
    "Site", store.sites, "site", page=PAGE, default=store.sites[-1], container=c2
)
method = state.url_selectbox("Map", ["pca", "umap"], "map", page=PAGE, container=c3)
n_points = state.url_select_slider("Points", POINTS, "n", page=PAGE, default=2000, container=c4)
seed = state.url_number_input("Seed", "seed", page=PAGE, default=0, min_value=0, container=c5)
labels = labels_of(path, mtime)
c6, c7 = st.columns(2)
colour = state.url_selectbox(
    "Colour by", [explore_view.NONE, *sorted(labels)], "color", page=PAGE, container=c6
)
compare = state.url_selectbox(
    "Side by side with (same rows: another checkpoint or model)",
    [explore_view.NONE, *explore_view.same_row_partners(names, choice, site)],
    "compare",
    page=PAGE,
    container=c7,
)

try:
    rows, acts, coords, info = mapped(path, mtime, site, method, n_points, seed)
except (WorkbenchError, OSError, ValueError) as e:
    st.error(f"Cannot map `{site}` of `{choice}`: {e}")
    st.stop()
try:
    selected = decode_rows(st.query_params.get("sel", ""), store.entry["n_rows"])
except WorkbenchError as e:
    st.warning(f"Ignoring the URL's selection: {e}")
    selected = np.zeros(0, dtype=np.int64)
colour_name = None if colour == explore_view.NONE else colour
panels = selection_panels(acts, rows, selected, labels, colour_name)
mask = panels["mask"]

title = f"{info['method'].upper()} of {len(rows):,} rows at {site}"
fig = explore_view.map_figure(coords, rows, mask, labels, colour_name, f"{choice}: {title}", info)
other = inside_runs(compare, root) if compare != explore_view.NONE else None
view = f"{choice} {site} {method}"  # names the exported files
if other is None:
    show_map(fig, f"{view} map")
else:
    other_mtime = (other / "manifest.json").stat().st_mtime
    if not rows_match(path, mtime, str(other), other_mtime):
        st.warning(f"`{compare}` holds other rows (tokens differ) than `{choice}`: not compared.")
        show_map(fig, f"{view} map")
    else:
        rows_b, _acts_b, coords_b, info_b = mapped(
            str(other), other_mtime, site, method, n_points, seed
        )
        mask_b = np.isin(rows_b, selected)  # rows_b == rows: same row count, points, seed
        fig_b = explore_view.map_figure(
            coords_b, rows_b, mask_b, labels, colour_name, f"{compare}: {title}", info_b
        )
        left_map, right_map = st.columns(2)
        with left_map:
            show_map(fig, f"{view} map")
        with right_map:
            show_map(fig_b, f"{compare} {site} {method} map", key="map-b")

st.subheader(f"Selection: {int(mask.sum()):,} of {len(rows):,} mapped rows")
if not mask.any():
    st.info("Nothing selected yet: drag a box or lasso on the map.")
    st.stop()
left, right = st.columns(2)
if panels["makeup"] is not None:
    chart = explore_view.makeup_figure(panels["makeup"], colour_name)
    show_figure(chart, f"{view} selection makeup by {colour_name}", container=left)
else:
    left.caption("Colour the map by a label to see which values the selection is rich in.")
if panels["units"] is not None:
    show_figure(
        explore_view.units_figure(panels["units"]), f"{view} selection units", container=right
    )
else:
    right.caption("Every mapped row is selected: nothing to contrast with.")
reader = open_store(path, mtime)
table, tokens = explore_view.rows_table(
    contexts(reader, rows[mask][:MAX_CONTEXTS], store_decoder(reader))
)
if tokens:
    st.markdown("**Selected tokens in context** (the token in [brackets])")
else:
    st.markdown("**Selected rows** (this store's rows have no tokens)")
show_table(table, f"{view} selected rows", hide_index=True)
if mask.sum() > MAX_CONTEXTS:
    st.caption(f"The first {MAX_CONTEXTS} of {int(mask.sum()):,} selected rows.")
