"""Geometry page: intrinsic dimension, anisotropy, effective rank and sparsity per site.

Thin: `analyses.geometry.curves.store_curves` computes the curves (cached by store path,
manifest time and settings); this page draws them over layers for the chosen store, and over
checkpoints when the runs dir holds stores of several checkpoints of the same model, dataset and
sites (e.g. written by `capture_series`), or saved "geometry-curves" results. View state (store,
sample size, a marked site) lives in the URL.

Side by side: a second store with sites in common (another checkpoint or model; its rows may
differ) is drawn on the same axes, dashed, over the shared sites, with a table of the differences
(first minus second); the second store is kept in the URL as `store_b`, and one that shares no
site with the first is refused with a warning. `site` marks a site on every curve (the Overview
page links here with it).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench.analysis.results import Result, list_results
from workbench.errors import WorkbenchError
from workbench_app.lib import geometry_view, pickers
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.state import url_select_slider, url_selectbox
from workbench_app.services.runsdir import inside_runs, runs_root

st.set_page_config(page_title="Workbench: geometry", layout="wide")
root = runs_root()
PAGE = "geometry"  # namespaces its widgets' session state (shared by every page of the app)
SAMPLES = [1000, 2000, 5000]


@st.cache_data(show_spinner="computing geometry...")
def curves(paths: tuple[str, ...], mtimes: tuple[float, ...], max_samples: int) -> pd.DataFrame:
    """The curves frame of the stores at `paths` (keyed by manifest times: a re-captured
    store is recomputed)."""
    import warnings

    from analyses.geometry.curves import store_curves

    limit = {"max_samples": max_samples}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sample-size warnings are shown in the CLI's --json
        return store_curves(
            list(paths),
            params={"twonn": limit, "mle": limit, "anisotropy": {"n_pairs": 20000}},
        )


def store_frame(name: str, max_samples: int) -> pd.DataFrame:
    """The labelled curves of store `name` (with a `store` column); stops the page on failure."""
    path = pickers.inside_or_stop(name, root)
    try:
        frame = curves((str(path),), ((path / "manifest.json").stat().st_mtime,), max_samples)
    except (WorkbenchError, OSError) as e:
        st.error(f"Cannot compute the geometry of `{name}`: {e}")
        st.stop()
    return geometry_view.label(frame).assign(store=name)


st.title("Representation geometry")
st.caption(
    "TwoNN and MLE intrinsic dimension (seeded subsample), PCA participation ratio and "
    "#components for 90% variance, anisotropy, effective rank, and unit sparsity, per site. "
    f"Runs directory: `{root}`"
)
pickers.stop_if_empty(root)
names = pickers.complete_stores(root)
c1, c2, c3 = st.columns([3, 3, 2])
store = pickers.pick_store(root, names, page=PAGE, container=c1)
choice, sites = store.name, store.sites
partners = geometry_view.shared_site_partners(names, choice)
store_b = url_selectbox(
    "Side by side with (shared sites: another checkpoint or model)",
    [geometry_view.NONE, *partners],
    "store_b",
    page=PAGE,
    container=c2,
    refuse=geometry_view.partner_refusal(names, choice, partners),
)
max_samples = url_select_slider(
    "Rows used by TwoNN / MLE", SAMPLES, "samples", page=PAGE, default=2000, container=c3
)
mark = url_selectbox(
    "Mark a site",
    [geometry_view.NONE, *sites],
    "site",
    page=PAGE,
    refuse=lambda w: f"No site `{w}` in `{choice}`; valid: {', '.join(sites)}.",
)

frame = store_frame(choice, max_samples)
spec = store.spec
cols = st.columns(4)
cols[0].metric("model", str(spec.get("model")))
cols[1].metric("dataset", str(spec.get("dataset")))
cols[2].metric("rows", f"{store.entry['n_rows']:,}")
cols[3].metric("sites", frame["site"].nunique())

order = list(dict.fromkeys(frame["site"]))  # by depth
shown = frame
if store_b != geometry_view.NONE:
    frame_b = store_frame(store_b, max_samples)
    shown, order, only = geometry_view.side_by_side(frame, frame_b)
    st.caption(
        f"Solid: `{choice}` ({spec.get('model')}); dashed: `{store_b}` "
        f"({names[store_b]['spec'].get('model')}, {names[store_b]['n_rows']:,} rows), on their "
        f"{len(order)} shared sites" + (f" (not shared: {', '.join(only)})" if only else "")
    )
marked = None if mark == geometry_view.NONE or mark not in order else mark

st.subheader("Over layers")
shown_stores = choice if store_b == geometry_view.NONE else f"{choice} vs {store_b}"
for title, fig in geometry_view.layer_panels(shown, order, marked):
    show_figure(fig, f"{shown_stores} {title}")
with st.expander("Values"):
    show_table(geometry_view.values_table(frame), f"{choice} geometry values")
if store_b != geometry_view.NONE:
    with st.expander(f"Values of {store_b}"):
        show_table(geometry_view.values_table(frame_b), f"{store_b} geometry values")
    st.markdown(f"**Difference: `{choice}` minus `{store_b}`, per shared site**")
    show_table(
        geometry_view.difference_table(frame, frame_b, order),
        f"{choice} minus {store_b} geometry values",
    )

st.subheader("Over checkpoints")
member = geometry_view.series_of(names, choice)
siblings, steps = [path for _, path in member], {step for step, _ in member}
saved = [r for r in list_results(root) if r["analysis"] == "geometry-curves"]
over: pd.DataFrame | None = None
if len(steps) > 1 and None not in steps:
    model = str(spec.get("model")).partition("@")[0]
    st.caption(
        f"{len(siblings)} stores of `{model}` on the same rows of `{spec.get('dataset')}`: "
        f"steps {sorted(steps)}"
    )
    paths = [inside_runs(n, root) for n in siblings]
    over = curves(
        tuple(str(p) for p in paths if p is not None),
        tuple((p / "manifest.json").stat().st_mtime for p in paths if p is not None),
        max_samples,
    )
elif saved:
    pick = st.selectbox("Saved geometry-curves result", [r["path"] for r in saved])
    target = inside_runs(pick, root)
    if target is not None:
        over = Result.load(target).frame
if over is None or over["checkpoint_step"].nunique() < 2:
    st.info(
        "Only one checkpoint here. Capture a checkpoint series with "
        "`analyses.geometry.curves.capture_series` (one store per step) to see curves over "
        "training."
    )
else:
    over = geometry_view.label(over)
    metric = st.selectbox("Estimate", list(dict.fromkeys(over["estimate"])))
    show_figure(geometry_view.training_figure(over, metric), f"{choice} {metric} over training")
