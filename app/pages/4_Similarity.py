"""Similarity page: layer x layer map of a store, checkpoint x layer convergence of a checkpoint
series, and model x model (two stores of the same datapoints).

Every map is selectable: a click on a cell (or a box: its first cell) drives the panel under the
map: that pair of layers through every measure, the canonical correlation spectra of SVCCA and
CCA, and links to Explore at both sites. Plotly heatmaps report no selection to Streamlit (it
forwards only `plotly_selected`, which heatmap traces never raise), so each map carries an
invisible marker at every cell centre, which clicks and boxes select.

Thin: the maps and the pair come from `analyses.similarity_maps` (each layer decomposed once),
cached with `st.cache_data` keyed by the store paths, their manifests' mtimes and the measure. A
checkpoint series is two or more complete stores of one model at different steps on the same rows
and sites (`workbench.runsdir.checkpoint_series`: `capture_checkpoints` output, or a batch's
stores). View state lives in the URL's query
parameters (measure, store, series, a, b), the selected cells too: `cell=SITE_A,SITE_B` (layer x
layer), `step_cell=STEP,SITE` (checkpoint x layer), `pair_cell=SITE_OF_A,SITE_OF_B` (model x
model).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from workbench.app_export import show_figure, show_table
from workbench.app_state import url_selectbox
from workbench.errors import WorkbenchError
from workbench.overview import page_link
from workbench.runsdir import checkpoint_series, inside_runs, runs_root, stores_by_path
from workbench.store import ActivationStore

MEASURES = ["svcca", "cca", "pwcca", "cka", "procrustes"]

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


@st.cache_data(show_spinner="comparing the pair...")
def pair_numbers(a: str, site_a: str, b: str, site_b: str, mtimes: tuple) -> dict:
    """Every measure of one pair of layers (site_a of store a vs site_b of store b): per measure
    its similarity, canonical correlations (CCA family) and details."""
    from analyses.similarity_maps import pair_comparisons

    found = pair_comparisons(_open(a), site_a, _open(b), site_b)
    return {
        m: {
            "similarity": c.similarity,
            "correlations": None if c.correlations is None else c.correlations.tolist(),
            "details": c.details,
        }
        for m, c in found.items()
    }


def cell_of(point: dict) -> tuple[str, str] | None:
    """(row label, column label) of a selected cell marker (its customdata; the heatmap itself
    reports no points). Streamlit hands customdata on as a list or as an index-keyed dict."""
    data = point.get("customdata")
    if isinstance(data, dict):
        data = [data.get(str(i), data.get(i)) for i in range(2)]
    if not isinstance(data, list | tuple) or len(data) < 2 or None in data[:2]:
        return None
    return str(data[0]), str(data[1])


def on_cell(param: str) -> None:
    """A click (or box) on the map kept under URL parameter `param` replaces its cell (the
    first cell of a box); clearing the selection drops it."""
    state = st.session_state.get(f"{PAGE}-{param}")
    points = (state or {}).get("selection", {}).get("points", []) if state else []
    cells = [cell for cell in map(cell_of, points) if cell is not None]
    if cells:
        st.query_params[param] = ",".join(cells[0])
    else:
        st.query_params.pop(param, None)


def url_cell(param: str, rows: list[str], cols: list[str]) -> tuple[str, str] | None:
    """The cell `ROW,COLUMN` in URL parameter `param`, if both are labels of the map; None if
    absent, and a warning naming the valid values if not."""
    text = st.query_params.get(param)
    if not text:
        return None
    row, _, col = text.partition(",")
    if row in rows and col in cols:
        return row, col
    st.warning(
        f"No cell `{text}` in this map ({param}=ROW,COLUMN): rows are {', '.join(rows)}; "
        f"columns are {', '.join(cols)}. Click a cell to pick one."
    )
    return None


def heatmap(result: dict, title: str, axes: tuple[str, str], cell, hover: str) -> go.Figure:
    """The map as a heatmap with an invisible marker at each cell centre (customdata: row and
    column label, value), so that a click or a box selects cells: Streamlit reports selections
    only of traces plotly can select points of, which heatmaps are not. `hoverdistance=-1`
    makes a click anywhere in a cell land on its marker. The selected `cell` is outlined."""
    z = np.array(result["matrix"], dtype=float)
    xs, ys = [str(v) for v in result["x"]], [str(v) for v in result["y"]]
    fig = px.imshow(
        z,
        x=xs,
        y=ys,
        zmin=0,
        zmax=1,
        aspect="auto",
        color_continuous_scale="Viridis",
        labels={"color": measure},
        text_auto=".2f",
        title=title,
    )
    fig.update_traces(hoverinfo="skip", hovertemplate=None, selector={"type": "heatmap"})
    rows, cols = np.divmod(np.arange(z.size), len(xs))
    fig.add_trace(
        go.Scatter(
            x=[xs[j] for j in cols],
            y=[ys[i] for i in rows],
            customdata=[[ys[i], xs[j], z[i, j]] for i, j in zip(rows, cols, strict=True)],
            mode="markers",
            marker={"size": 24, "color": "rgba(0,0,0,0)"},
            hovertemplate=hover + ": %{customdata[2]:.3f}<extra></extra>",
            name="cells",
            showlegend=False,
        )
    )
    if cell is not None:
        i, j = ys.index(cell[0]), xs.index(cell[1])
        fig.add_shape(
            type="rect",
            x0=j - 0.5,
            x1=j + 0.5,
            y0=i - 0.5,
            y1=i + 0.5,
            line={"color": "red", "width": 3},
        )
    fig.update_xaxes(title=axes[0], type="category")
    fig.update_yaxes(title=axes[1], type="category")
    fig.update_layout(hoverdistance=-1)
    return fig


def show_map(
    compute, failure: str, title: str, axes: tuple[str, str], param: str, hover: str,
    name: str, report=st.error,
):  # fmt: skip
    """Compute a map (a headline with `matrix`, `x` and `y` labels) and draw it as a selectable
    heatmap whose selected cell lives in URL parameter `param` (exported as `name`); a
    WorkbenchError is shown with `report` instead. Returns (headline, selected cell as (row,
    column) labels), or (None, None)."""
    try:
        result = compute()
    except WorkbenchError as exc:
        report(f"{failure}: {exc}")
        return None, None
    cell = url_cell(param, [str(v) for v in result["y"]], [str(v) for v in result["x"]])
    show_figure(
        heatmap(result, title, axes, cell, hover),
        name,
        key=f"{PAGE}-{param}",
        on_select=partial(on_cell, param),
        selection_mode=("points", "box"),
    )
    return result, cell


def explore_link(store: str, site: str, compare: str | None = None) -> str:
    return page_link("Explore", store=store, site=site, **({"compare": compare} if compare else {}))


def pair_panel(
    a: str, site_a: str, b: str, site_b: str, value: float, links: list[tuple[str, str]],
    param: str,
) -> None:  # fmt: skip
    """The selected pair (site_a of store a vs site_b of store b): its number under every
    measure (the map's own measure marked; `value` is its cell), the canonical correlation
    spectra of SVCCA and CCA, and `links` (text, URL). `param`: the map's URL parameter (keys
    its exports apart from another map's panel of the same pair)."""
    st.markdown(f"**Selected: `{site_a}` of `{a}` vs `{site_b}` of `{b}`** ({measure} {value:.3f})")
    try:
        numbers = pair_numbers(a, site_a, b, site_b, (_mtime(a), _mtime(b)))
    except WorkbenchError as exc:
        st.error(f"Cannot compare the pair: {exc}")
        return
    table = pd.DataFrame(
        [
            {
                "measure": m,
                "similarity": n["similarity"],
                "in the map": "yes" if m == measure else "",
                "directions": "x".join(str(k) for k in n["details"].get("kept", [])),
                "rank": "x".join(str(r) for r in n["details"].get("rank", [])),
            }
            for m, n in numbers.items()
        ]
    )
    left, right = st.columns(2)
    pair = f"{a} {site_a} vs {b} {site_b}"
    with left:
        show_table(
            table,
            f"{pair} similarity measures",
            key=f"{PAGE}-{param}-measures",
            hide_index=True,
            column_config={"similarity": st.column_config.NumberColumn(format="%.4f")},
        )
        st.caption("directions: SVCCA's kept directions (99% of variance) of each layer.")
        for text, url in links:
            st.markdown(f"- [{text}]({url})")
    spectra = [
        {"measure": m, "direction": k + 1, "correlation": rho}
        for m in ("svcca", "cca")
        for k, rho in enumerate(numbers[m]["correlations"] or [])
    ]
    if spectra:
        fig = px.line(
            pd.DataFrame(spectra),
            x="direction",
            y="correlation",
            color="measure",
            markers=True,
            title="Canonical correlations of the pair (descending)",
        )
        fig.update_yaxes(range=[0, 1.02])
        show_figure(
            fig,
            f"{pair} canonical correlations",
            key=f"{PAGE}-{param}-spectra",
            container=right,
        )


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
stores = stores_by_path(root)  # the complete ones
complete = sorted(stores)
if not complete:
    st.info(f"No complete stores under `{root}` yet. Run `workbench demo` first.")
    st.stop()
measure = pick("Measure", MEASURES, "measure")

st.subheader("Layer x layer")
store = pick("Store", complete, "store")
layers, cell = show_map(
    lambda: layer_matrix(store, _mtime(store), measure),
    f"Cannot compare the layers of `{store}`",
    f"{measure}: every layer of {store} against every layer (click a cell)",
    ("site", "site"),
    "cell",
    "%{customdata[0]} vs %{customdata[1]}",
    f"{store} {measure} layer x layer",
)
if layers is not None and cell is not None:
    i, j = layers["sites_a"].index(cell[0]), layers["sites_b"].index(cell[1])
    pair_panel(
        store,
        cell[0],
        store,
        cell[1],
        layers["matrix"][i][j],
        [(f"Explore `{site}` of `{store}`", explore_link(store, site)) for site in cell],
        "cell",
    )
elif layers is not None:
    st.caption("Click a cell to see that pair of layers through every measure.")

series = checkpoint_series(stores)
st.subheader("Checkpoints x layers: convergence to the final checkpoint")
if not series:
    st.info(
        "No checkpoint series in the runs dir (stores of one model at two or more steps, on the "
        "same rows and sites); capture one with `analyses.similarity_maps.capture_checkpoints` "
        "(see notebooks/similarity.ipynb) or a batch over checkpoints (`workbench batch run`)."
    )
else:
    name = pick("Checkpoint series", sorted(series), "series")
    steps = tuple(series[name])
    conv, step_cell = show_map(
        lambda: checkpoint_matrix(steps, tuple(_mtime(r) for _, r in steps), measure),
        f"Cannot compare the checkpoints of `{name}`",
        f"{measure}: each checkpoint's layer vs the same layer at the last step (click a cell)",
        ("site", "training step"),
        "step_cell",
        "step %{customdata[0]}, %{customdata[1]}",
        f"{name} {measure} checkpoints x layers",
    )
    if conv is not None and step_cell is not None:
        by_step = dict(steps)
        step, site = int(step_cell[0]), step_cell[1]
        reference = by_step[conv["reference_step"]]
        i, j = conv["steps"].index(step), conv["sites"].index(site)
        pair_panel(
            by_step[step],
            site,
            reference,
            site,
            conv["matrix"][i][j],
            [
                (f"Explore `{site}` at step {step}", explore_link(by_step[step], site)),
                (
                    f"Explore `{site}` at step {conv['reference_step']}",
                    explore_link(reference, site),
                ),
                ("Both side by side", explore_link(by_step[step], site, compare=reference)),
            ],
            "step_cell",
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
        show_figure(fig, f"{name} {measure} similarity to the final state over training")

st.subheader("Model x model")
cols = st.columns(2)
with cols[0]:
    a = pick("Store A", complete, "a")
with cols[1]:
    b = pick("Store B", complete, "b", default=1)
cross, pair_cell = show_map(
    lambda: cross_matrix(a, b, (_mtime(a), _mtime(b)), measure),
    f"`{a}` and `{b}` cannot be compared row by row",
    f"{measure}: layers of {a} (rows) vs {b} (columns) (click a cell)",
    (f"site of {b}", f"site of {a}"),
    "pair_cell",
    "%{customdata[0]} of A vs %{customdata[1]} of B",
    f"{a} vs {b} {measure} model x model",
    report=st.info,
)
if cross is not None and pair_cell is not None:
    i, j = cross["sites_a"].index(pair_cell[0]), cross["sites_b"].index(pair_cell[1])
    links = [
        (f"Explore `{pair_cell[0]}` of `{a}`", explore_link(a, pair_cell[0])),
        (f"Explore `{pair_cell[1]}` of `{b}`", explore_link(b, pair_cell[1])),
    ]
    if pair_cell[0] == pair_cell[1]:
        links.append(("Both side by side", explore_link(a, pair_cell[0], compare=b)))
    pair_panel(a, pair_cell[0], b, pair_cell[1], cross["matrix"][i][j], links, "pair_cell")
