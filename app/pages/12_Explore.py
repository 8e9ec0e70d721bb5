"""Explore page: a map of one site's activations (PCA or UMAP of sampled rows, coloured by any
label) whose box or lasso selection drives the other panels: how many rows, which label values
the selection is rich in, the units that set it apart (Cohen's d), and the selected tokens in
context. A second store holding the same rows (another checkpoint or model on the same data)
can be mapped side by side, the selection linked across both maps.

Thin: `analyses.explore` does the work. The whole view (store, site, map, colour, points, seed,
selection) lives in the URL, the selection as compact row ranges (`sel=0-4,9`), so a copied link
reproduces it; a selection from a link is drawn as ringed points.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analyses.explore import (
    contexts,
    decode_rows,
    encode_rows,
    project,
    row_labels,
    sample_rows,
    selection_panels,
)
from workbench.app_export import show_figure, show_table
from workbench.app_state import url_number_input, url_select_slider, url_selectbox
from workbench.errors import WorkbenchError
from workbench.runsdir import inside_runs, runs_root, stores_by_path
from workbench.store import ActivationStore
from workbench.tokens import store_decoder

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
def same_rows(path_a: str, mtime_a: float, path_b: str, mtime_b: float) -> bool:
    """Whether two stores hold the same rows: equal token ids, examples and positions (the same
    dataset captured from two checkpoints or models with one tokenizer)."""
    a, b = open_store(path_a, mtime_a), open_store(path_b, mtime_b)
    return all(
        np.array_equal(x(), y())
        for x, y in (
            (a.token_ids, b.token_ids),
            (a.example_index, b.example_index),
            (a.positions, b.positions),
        )
    )


def map_figure(coords, rows, mask, labels, colour_name, title, info):
    """The scatter of a map: one point per row (row id as customdata), coloured by
    `colour_name`'s values in numeric order, the selected rows ringed."""
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "row": rows})
    category_order = {}
    if colour_name is not None:
        values = np.asarray(labels[colour_name])[rows]
        frame[colour_name] = values.astype(str)
        category_order = {colour_name: [str(v) for v in np.unique(values)]}
    fig = px.scatter(
        frame,
        x="x",
        y="y",
        color=colour_name,
        category_orders=category_order,
        custom_data=["row"],
        hover_data={"row": True, "x": False, "y": False},
        title=title,
        render_mode="webgl",
    )
    fig.update_traces(marker={"size": 5})
    if mask.any():
        ring = {"size": 11, "color": "rgba(0,0,0,0)", "line": {"width": 1.5, "color": "black"}}
        fig.add_trace(
            go.Scattergl(
                x=coords[mask, 0],
                y=coords[mask, 1],
                mode="markers",
                name=f"selected ({int(mask.sum())})",
                marker=ring,
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        xaxis_title=info["axes"][0], yaxis_title=info["axes"][1], dragmode="select", height=560
    )
    return fig


def row_of(point: dict) -> int | None:
    """The store row of a selected map point (its customdata; the selection ring has none).
    Streamlit hands customdata on as a list or as an index-keyed dict."""
    data = point.get("customdata")
    if isinstance(data, dict):
        data = data.get("0", data.get(0))
    elif isinstance(data, list | tuple):
        data = data[0] if data else None
    return None if data is None else int(data)


def on_select(chart: str = "map") -> None:
    """A new box/lasso selection on `chart` (or its clearing) replaces the URL's `sel`."""
    state = st.session_state.get(chart)
    points = (state or {}).get("selection", {}).get("points", []) if state else []
    rows = [row for row in map(row_of, points) if row is not None]
    if rows:
        st.query_params["sel"] = encode_rows(np.array(rows))
    else:
        st.query_params.pop("sel", None)


st.title("Explore activations")
st.caption(
    "Select points on the map (box or lasso); every panel below follows the selection, and the "
    f"URL keeps it. Runs directory: `{root}`"
)
names = stores_by_path(root)
if not names:
    st.info(f"No complete stores under `{root}`. Run `workbench demo` or `workbench capture`.")
    st.stop()
choices = sorted(names)
c1, c2, c3, c4, c5 = st.columns([3, 3, 1, 2, 1])
choice = url_selectbox("Store", choices, "store", page=PAGE, container=c1)
sites = names[choice]["sites"]
site = url_selectbox("Site", sites, "site", page=PAGE, default=sites[-1], container=c2)
method = url_selectbox("Map", ["pca", "umap"], "map", page=PAGE, container=c3)
n_points = url_select_slider("Points", POINTS, "n", page=PAGE, default=2000, container=c4)
seed = url_number_input("Seed", "seed", page=PAGE, default=0, min_value=0, container=c5)
path = inside_runs(choice, root)
if path is None:
    st.error("That store is outside the runs directory.")
    st.stop()
mtime = (path / "manifest.json").stat().st_mtime
labels = labels_of(str(path), mtime)
colour_options = ["(none)", *sorted(labels)]
c6, c7 = st.columns(2)
colour = url_selectbox("Colour by", colour_options, "color", page=PAGE, container=c6)
partners = [
    name
    for name, entry in names.items()
    if name != choice and entry["n_rows"] == names[choice]["n_rows"] and site in entry["sites"]
]
compare = url_selectbox(
    "Side by side with (same rows: another checkpoint or model)",
    ["(none)", *partners],
    "compare",
    page=PAGE,
    container=c7,
)

try:
    rows, acts, coords, info = mapped(str(path), mtime, site, method, n_points, seed)
except (WorkbenchError, OSError, ValueError) as e:
    st.error(f"Cannot map `{site}` of `{choice}`: {e}")
    st.stop()
try:
    selected = decode_rows(st.query_params.get("sel", ""), names[choice]["n_rows"])
except WorkbenchError as e:
    st.warning(f"Ignoring the URL's selection: {e}")
    selected = np.zeros(0, dtype=np.int64)
colour_name = None if colour == "(none)" else colour
panels = selection_panels(acts, rows, selected, labels, colour_name)
mask = panels["mask"]

title = f"{info['method'].upper()} of {len(rows):,} rows at {site}"
fig = map_figure(coords, rows, mask, labels, colour_name, f"{choice}: {title}", info)
other = inside_runs(compare, root) if compare != "(none)" else None
view = f"{choice} {site} {method}"  # names the exported files
if other is None:
    show_figure(fig, f"{view} map", key="map", on_select=on_select, selection_mode=("box", "lasso"))
else:
    other_mtime = (other / "manifest.json").stat().st_mtime
    if not same_rows(str(path), mtime, str(other), other_mtime):
        st.warning(f"`{compare}` holds other rows (tokens differ) than `{choice}`: not compared.")
        show_figure(
            fig, f"{view} map", key="map", on_select=on_select, selection_mode=("box", "lasso")
        )
    else:
        rows_b, _acts_b, coords_b, info_b = mapped(
            str(other), other_mtime, site, method, n_points, seed
        )
        mask_b = np.isin(rows_b, selected)  # rows_b == rows: same row count, points, seed
        fig_b = map_figure(
            coords_b, rows_b, mask_b, labels, colour_name, f"{compare}: {title}", info_b
        )
        left_map, right_map = st.columns(2)
        with left_map:
            show_figure(
                fig, f"{view} map", key="map", on_select=on_select, selection_mode=("box", "lasso")
            )
        with right_map:
            show_figure(
                fig_b,
                f"{compare} {site} {method} map",
                key="map-b",
                on_select=partial(on_select, "map-b"),
                selection_mode=("box", "lasso"),
            )

st.subheader(f"Selection: {int(mask.sum()):,} of {len(rows):,} mapped rows")
if not mask.any():
    st.info("Nothing selected yet: drag a box or lasso on the map.")
    st.stop()
left, right = st.columns(2)
if panels["makeup"] is not None:
    makeup = panels["makeup"].melt(
        id_vars="value",
        value_vars=["share_selected", "share_all"],
        var_name="rows",
        value_name="share",
    )
    chart = px.bar(
        makeup.head(40),
        x="value",
        y="share",
        color="rows",
        barmode="group",
        title=f"{colour_name}: share among selected vs all rows",
    )
    chart.update_xaxes(type="category", title=colour_name)
    show_figure(chart, f"{view} selection makeup by {colour_name}", container=left)
else:
    left.caption("Colour the map by a label to see which values the selection is rich in.")
if panels["units"] is not None:
    units = panels["units"].assign(unit=lambda f: f["unit"].astype(str))
    chart = px.bar(
        units, x="unit", y="effect", title="Units that set the selection apart (Cohen's d)"
    )
    chart.update_xaxes(type="category")
    show_figure(chart, f"{view} selection units", container=right)
else:
    right.caption("Every mapped row is selected: nothing to contrast with.")
store = open_store(str(path), mtime)
picked = rows[mask][:MAX_CONTEXTS]
table = contexts(store, picked, store_decoder(store))
if (table["token"] == "").all():  # an image or array model: rows are examples, not tokens
    st.markdown("**Selected rows** (this store's rows have no tokens)")
    table = table.drop(columns=["token", "context"])
else:
    st.markdown("**Selected tokens in context** (the token in [brackets])")
show_table(table, f"{view} selected rows", hide_index=True)
if mask.sum() > MAX_CONTEXTS:
    st.caption(f"The first {MAX_CONTEXTS} of {int(mask.sum()):,} selected rows.")
