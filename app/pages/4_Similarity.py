"""Similarity page: layer x layer map of a store, checkpoint x layer convergence of a checkpoint
series, and model x model (two stores of the same datapoints).

Every map is selectable: a click on a cell (or a box: its first cell) drives the panel under the
map: that pair of layers through every measure, the canonical correlation spectra of SVCCA and
CCA, and links to Explore at both sites (`workbench_app.lib.similarity_view` draws the maps
with a selectable marker at every cell, as Streamlit reports no selection of a heatmap).

Thin: the maps and the pair come from `analyses.similarity.maps` (each layer decomposed once),
cached with `st.cache_data` keyed by the store paths, their manifests' mtimes and the measure. A
checkpoint series is two or more complete stores of one model at different steps on the same
rows and sites (`workbench_app.services.runsdir.checkpoint_series`: `capture_checkpoints`
output, or a batch's stores). View state lives in the URL's query parameters (measure, store,
series, a, b), the selected cells too: `cell=SITE_A,SITE_B` (layer x layer),
`step_cell=STEP,SITE` (checkpoint x layer), `pair_cell=SITE_OF_A,SITE_OF_B` (model x model).
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from analyses.similarity.compare import MEASURES
from workbench.errors import WorkbenchError
from workbench.store import ActivationStore
from workbench_app.lib import similarity_view, state
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.pickers import complete_stores, pick_store, stop_if_empty
from workbench_app.services import runsdir

st.set_page_config(page_title="Workbench: similarity", layout="wide")
root = runsdir.runs_root()
PAGE = "similarity"  # namespaces its widgets' session state (shared by every page of the app)


def _mtime(relative: str) -> float:
    path = runsdir.inside_runs(relative, root)
    return (path / "manifest.json").stat().st_mtime if path is not None else 0.0


def _open(relative: str) -> ActivationStore:
    path = runsdir.inside_runs(relative, root)
    if path is None:
        raise WorkbenchError(f"store {relative!r} is outside the runs directory")
    return ActivationStore(path)


@st.cache_data(show_spinner="decomposing layers...")
def layer_matrix(relative: str, mtime: float, measure: str) -> dict:
    from analyses.similarity.maps import layer_map

    headline = layer_map(_open(relative), measure=measure).headline
    return {**headline, "x": headline["sites_b"], "y": headline["sites_a"]}


@st.cache_data(show_spinner="comparing checkpoints...")
def checkpoint_matrix(stores: tuple[tuple[int, str], ...], mtimes: tuple, measure: str) -> dict:
    from analyses.similarity.maps import checkpoint_map

    headline = checkpoint_map({s: _open(rel) for s, rel in stores}, measure=measure).headline
    return {**headline, "x": headline["sites"], "y": headline["steps"]}


@st.cache_data(show_spinner="comparing models...")
def cross_matrix(a: str, b: str, mtimes: tuple, measure: str) -> dict:
    from analyses.similarity.maps import cross_map

    headline = cross_map(_open(a), _open(b), measure=measure).headline
    return {**headline, "x": headline["sites_b"], "y": headline["sites_a"]}


@st.cache_data(show_spinner="comparing the pair...")
def pair_numbers(a: str, site_a: str, b: str, site_b: str, mtimes: tuple) -> dict:
    """Every measure of one pair of layers (site_a of store a vs site_b of store b): per measure
    its similarity, canonical correlations (CCA family) and details."""
    from analyses.similarity.maps import pair_comparisons

    return similarity_view.plain_numbers(pair_comparisons(_open(a), site_a, _open(b), site_b))


def show_map(
    compute, measure: str, failure: str, title: str, axes: tuple[str, str], param: str,
    hover: str, name: str, report=st.error,
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
    rows, cols = similarity_view.labels(result)
    text = st.query_params.get(param) or None  # an empty value names no cell: no warning
    if text is not None:
        text = state.refuse_url_value(
            param,
            similarity_view.cell_texts(rows, cols),
            similarity_view.cell_refusal(param, rows, cols),
        )
    cell = None if text is None else similarity_view.split_cell(text)
    show_figure(
        similarity_view.heatmap(result, measure, title, axes, cell, hover),
        name,
        key=f"{PAGE}-{param}",
        on_select=partial(
            state.url_selection, param, f"{PAGE}-{param}", similarity_view.encode_cell
        ),
        selection_mode=("points", "box"),
    )
    return result, cell


def pair_panel(
    a: str, site_a: str, b: str, site_b: str, measure: str, value: float,
    links: list[tuple[str, str]], param: str,
) -> None:  # fmt: skip
    """The selected pair (site_a of store a vs site_b of store b): its number under every
    measure (the map's own `measure` marked; `value` is its cell), the canonical correlation
    spectra of SVCCA and CCA, and `links` (text, URL). `param`: the map's URL parameter (keys
    its exports apart from another map's panel of the same pair)."""
    st.markdown(f"**Selected: `{site_a}` of `{a}` vs `{site_b}` of `{b}`** ({measure} {value:.3f})")
    try:
        numbers = pair_numbers(a, site_a, b, site_b, (_mtime(a), _mtime(b)))
    except WorkbenchError as exc:
        st.error(f"Cannot compare the pair: {exc}")
        return
    left, right = st.columns(2)
    pair = f"{a} {site_a} vs {b} {site_b}"
    with left:
        show_table(
            similarity_view.pair_table(numbers, measure),
            f"{pair} similarity measures",
            key=f"{PAGE}-{param}-measures",
            hide_index=True,
            column_config={"similarity": st.column_config.NumberColumn(format="%.4f")},
        )
        st.caption("directions: SVCCA's kept directions (99% of variance) of each layer.")
        for text, url in links:
            st.markdown(f"- [{text}]({url})")
    spectra = similarity_view.spectra_figure(numbers)
    if spectra is not None:
        show_figure(
            spectra,
            f"{pair} canonical correlations",
            key=f"{PAGE}-{param}-spectra",
            container=right,
        )


st.title("Representation similarity")
st.caption(
    "SVCCA keeps the top singular directions explaining 99% of each layer's variance, then CCA "
    "(mean canonical correlation); PWCCA weights the correlations by projection; CKA is linear "
    "CKA; procrustes is the nuclear-norm similarity of the normalised layers. 1 = identical up "
    "to the measure's invariances."
)
stop_if_empty(root)
stores = complete_stores(root)
measure = state.url_selectbox("Measure", MEASURES, "measure", page=PAGE)

st.subheader("Layer x layer")
store = pick_store(root, stores, page=PAGE).name
layers, cell = show_map(
    lambda: layer_matrix(store, _mtime(store), measure),
    measure,
    f"Cannot compare the layers of `{store}`",
    f"{measure}: every layer of {store} against every layer (click a cell)",
    ("site", "site"),
    "cell",
    "%{customdata[0]} vs %{customdata[1]}",
    f"{store} {measure} layer x layer",
)
if layers is not None and cell is not None:
    value = similarity_view.cell_value(layers, cell)
    pair_panel(
        store,
        cell[0],
        store,
        cell[1],
        measure,
        value,
        similarity_view.layer_links(store, cell),
        "cell",
    )
elif layers is not None:
    st.caption("Click a cell to see that pair of layers through every measure.")

series = runsdir.checkpoint_series(stores)
st.subheader("Checkpoints x layers: convergence to the final checkpoint")
if not series:
    st.info(
        "No checkpoint series in the runs dir (stores of one model at two or more steps, on the "
        "same rows and sites); capture one with `analyses.similarity.maps.capture_checkpoints` "
        "(see notebooks/similarity.ipynb) or a batch over checkpoints (`workbench batch run`)."
    )
else:
    name = state.url_selectbox("Checkpoint series", sorted(series), "series", page=PAGE)
    steps = tuple(series[name])
    conv, step_cell = show_map(
        lambda: checkpoint_matrix(steps, tuple(_mtime(r) for _, r in steps), measure),
        measure,
        f"Cannot compare the checkpoints of `{name}`",
        f"{measure}: each checkpoint's layer vs the same layer at the last step (click a cell)",
        ("site", "training step"),
        "step_cell",
        "step %{customdata[0]}, %{customdata[1]}",
        f"{name} {measure} checkpoints x layers",
    )
    if conv is not None and step_cell is not None:
        by_step, (step, site) = dict(steps), (int(step_cell[0]), step_cell[1])
        at, reference = by_step[step], by_step[conv["reference_step"]]
        pair_panel(
            at, site, reference, site, measure, similarity_view.cell_value(conv, step_cell),
            similarity_view.checkpoint_links(at, step, site, reference, conv["reference_step"]), "step_cell",
        )  # fmt: skip
    if conv is not None:
        show_figure(
            similarity_view.convergence_figure(conv, measure),
            f"{name} {measure} similarity to the final state over training",
        )

st.subheader("Model x model")
cols = st.columns(2)
a = pick_store(
    root, stores, page=PAGE, label="Store A", key="a", container=cols[0],
    default=lambda _wanted: similarity_view.cross_default(root, stores)[0],
).name  # fmt: skip
b = pick_store(
    root, stores, page=PAGE, label="Store B", key="b", container=cols[1],
    default=lambda _wanted: similarity_view.cross_default(root, stores, a)[1],
).name  # fmt: skip
cross, pair_cell = show_map(
    lambda: cross_matrix(a, b, (_mtime(a), _mtime(b)), measure),
    measure,
    f"`{a}` and `{b}` cannot be compared row by row",
    f"{measure}: layers of {a} (rows) vs {b} (columns) (click a cell)",
    (f"site of {b}", f"site of {a}"),
    "pair_cell",
    "%{customdata[0]} of A vs %{customdata[1]} of B",
    f"{a} vs {b} {measure} model x model",
    report=st.info,
)
if cross is not None and pair_cell is not None:
    value = similarity_view.cell_value(cross, pair_cell)
    links = similarity_view.cross_links(a, b, pair_cell)
    pair_panel(a, pair_cell[0], b, pair_cell[1], measure, value, links, "pair_cell")
