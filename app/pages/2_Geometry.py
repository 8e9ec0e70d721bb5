"""Geometry page: intrinsic dimension, anisotropy, effective rank and sparsity per site.

Thin: `analyses.geometry_curves.store_curves` computes the curves (cached by store path,
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
import plotly.express as px
import streamlit as st

from workbench.app_export import show_figure, show_table
from workbench.app_state import url_select_slider, url_selectbox
from workbench.errors import WorkbenchError
from workbench.results import Result, list_results
from workbench.runsdir import checkpoint_series, inside_runs, runs_root, stores_by_path

st.set_page_config(page_title="Workbench: geometry", layout="wide")
root = runs_root()
PAGE = "geometry"  # namespaces its widgets' session state (shared by every page of the app)

PANELS = [
    ("Intrinsic dimension", ["twonn", "mle", "pca-dim"]),
    ("Anisotropy (mean cosine of random pairs)", ["anisotropy"]),
    ("Effective rank (Roy & Vetterli)", ["effective-rank"]),
    ("Sparsity of units (after a nonlinearity)", ["sparsity"]),
]
SAMPLES = [1000, 2000, 5000]


@st.cache_data(show_spinner="computing geometry...")
def curves(paths: tuple[str, ...], mtimes: tuple[float, ...], max_samples: int) -> pd.DataFrame:
    """The curves frame of the stores at `paths` (keyed by manifest times: a re-captured
    store is recomputed)."""
    import warnings

    from analyses.geometry_curves import store_curves

    limit = {"max_samples": max_samples}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sample-size warnings are shown in the CLI's --json
        return store_curves(
            list(paths),
            params={"twonn": limit, "mle": limit, "anisotropy": {"n_pairs": 20000}},
        )


def label(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds `estimate` (analysis: metric) and orders rows by layer."""
    out = frame.assign(estimate=frame["analysis"] + ": " + frame["metric"])
    return out.sort_values(["layer", "site"], kind="stable")


def refused(key: str, options: list[str], why) -> None:
    """A warning when the URL's `key` named a value that is none of `options` (the widget then
    fell back to its default): `why(value)` says what is wrong with it."""
    wanted = st.query_params.get(key)
    if wanted is not None and wanted not in options:
        st.warning(why(wanted))


def layer_figure(part: pd.DataFrame, title: str, order: list[str], mark: str | None):
    """The curves of `part` over sites (in `order`), one line per estimate, dashed per store
    when it holds two; `mark` (a site) drawn as a vertical line."""
    two = part["store"].nunique() > 1
    fig = px.line(
        part,
        x="site",
        y="value",
        color="estimate",
        line_dash="store" if two else None,
        symbol="store" if two else None,
        markers=True,
        title=title,
        category_orders={"site": order},
    )
    fig.update_layout(legend_title_text="", xaxis_title="site (by depth)")
    if mark is not None and mark in set(part["site"]):  # a site this chart has values at
        fig.add_vline(x=mark, line_dash="dot", line_color="grey")
    return fig


def store_frame(name: str, max_samples: int) -> pd.DataFrame:
    """The labelled curves of store `name` (with a `store` column); stops the page on failure."""
    path = inside_runs(name, root)
    if path is None:
        st.error(f"`{name}` is outside the runs directory.")
        st.stop()
    try:
        frame = curves((str(path),), ((path / "manifest.json").stat().st_mtime,), max_samples)
    except (WorkbenchError, OSError) as e:
        st.error(f"Cannot compute the geometry of `{name}`: {e}")
        st.stop()
    return label(frame).assign(store=name)


def values_table(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.pivot_table(index=["layer", "site"], columns="estimate", values="value")


st.title("Representation geometry")
st.caption(
    "TwoNN and MLE intrinsic dimension (seeded subsample), PCA participation ratio and "
    "#components for 90% variance, anisotropy, effective rank, and unit sparsity, per site. "
    f"Runs directory: `{root}`"
)

names = stores_by_path(root)
if not names:
    st.info(f"No complete stores under `{root}`. Run `workbench demo` or `workbench capture`.")
    st.stop()
choices = sorted(names)
c1, c2, c3 = st.columns([3, 3, 2])
choice = url_selectbox("Store", choices, "store", page=PAGE, container=c1)
sites = list(names[choice]["sites"])
partners = [n for n in choices if n != choice and set(names[n]["sites"]) & set(sites)]
refused(
    "store_b",
    ["(none)", *partners],
    lambda wanted: (
        f"`{wanted}` shares no site with `{choice}`: not compared. Stores that do: "
        f"{', '.join(partners) or 'none'}."
        if wanted in names
        else f"No complete store `{wanted}` under the runs directory; valid: {', '.join(choices)}."
    ),
)
store_b = url_selectbox(
    "Side by side with (shared sites: another checkpoint or model)",
    ["(none)", *partners],
    "store_b",
    page=PAGE,
    container=c2,
)
max_samples = url_select_slider(
    "Rows used by TwoNN / MLE", SAMPLES, "samples", page=PAGE, default=2000, container=c3
)
refused(
    "site", ["(none)", *sites], lambda w: f"No site `{w}` in `{choice}`; valid: {', '.join(sites)}."
)
mark = url_selectbox("Mark a site", ["(none)", *sites], "site", page=PAGE)

frame = store_frame(choice, max_samples)
spec = names[choice]["spec"]
cols = st.columns(4)
cols[0].metric("model", str(spec.get("model")))
cols[1].metric("dataset", str(spec.get("dataset")))
cols[2].metric("rows", f"{names[choice]['n_rows']:,}")
cols[3].metric("sites", frame["site"].nunique())

order = list(dict.fromkeys(frame["site"]))  # by depth
shown = frame
if store_b != "(none)":
    frame_b = store_frame(store_b, max_samples)
    order = [s for s in order if s in set(frame_b["site"])]
    shown = pd.concat([frame, frame_b], ignore_index=True)
    shown = shown[shown["site"].isin(order)]
    spec_b = names[store_b]["spec"]
    only = sorted(set(frame["site"]) ^ set(frame_b["site"]))
    st.caption(
        f"Solid: `{choice}` ({spec.get('model')}); dashed: `{store_b}` ({spec_b.get('model')}, "
        f"{names[store_b]['n_rows']:,} rows), on their {len(order)} shared sites"
        + (f" (not shared: {', '.join(only)})" if only else "")
    )
marked = None if mark == "(none)" or mark not in order else mark

st.subheader("Over layers")
shown_stores = choice if store_b == "(none)" else f"{choice} vs {store_b}"
for title, group in PANELS:
    part = shown[shown["analysis"].isin(group)]
    if part.empty:
        continue
    show_figure(layer_figure(part, title, order, marked), f"{shown_stores} {title}")
with st.expander("Values"):
    show_table(values_table(frame), f"{choice} geometry values")
if store_b != "(none)":
    with st.expander(f"Values of {store_b}"):
        show_table(values_table(frame_b), f"{store_b} geometry values")
    st.markdown(f"**Difference: `{choice}` minus `{store_b}`, per shared site**")
    diff = values_table(frame).sub(values_table(frame_b))
    show_table(
        diff[diff.index.get_level_values("site").isin(order)],
        f"{choice} minus {store_b} geometry values",
    )

st.subheader("Over checkpoints")
member = next(  # the checkpoint series this store belongs to, if any
    (series for series in checkpoint_series(names).values() if choice in dict(series).values()),
    [(names[choice]["spec"].get("checkpoint_step"), choice)],
)
siblings, steps = [path for _, path in member], {step for step, _ in member}
saved = [r for r in list_results(root) if r["analysis"] == "geometry-curves"]
over: pd.DataFrame | None = None
if len(steps) > 1 and None not in steps:
    spec = names[choice]["spec"]
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
        "`analyses.geometry_curves.capture_series` (one store per step) to see curves over "
        "training."
    )
else:
    over = label(over)
    estimates = list(dict.fromkeys(over["estimate"]))
    metric = st.selectbox("Estimate", estimates)
    part = over[over["estimate"] == metric].sort_values("checkpoint_step")
    fig = px.line(
        part,
        x="checkpoint_step",
        y="value",
        color="site",
        markers=True,
        title=f"{metric} over training",
    )
    if part["checkpoint_step"].min() > 0:
        fig.update_xaxes(type="log")
    show_figure(fig, f"{choice} {metric} over training")
