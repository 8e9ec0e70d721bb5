"""Geometry page: intrinsic dimension, anisotropy, effective rank and sparsity per site.

Thin: `analyses.geometry_curves.store_curves` computes the curves (cached by store path,
manifest time and settings); this page draws them over layers for the chosen store, and over
checkpoints when the runs dir holds stores of several checkpoints of the same model, dataset and
sites (e.g. written by `capture_series`), or saved "geometry-curves" results. View state (store,
sample size) lives in the URL.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from workbench.app_state import url_select_slider, url_selectbox
from workbench.errors import WorkbenchError
from workbench.results import Result, list_results
from workbench.runsdir import inside_runs, runs_root, stores_by_path

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


def series_key(entry: dict) -> tuple:
    spec = entry["spec"]
    model = str(spec.get("model", "")).split("@")[0]
    return (model, spec.get("dataset"), tuple(entry["sites"]))


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
choice = url_selectbox("Store", choices, "store", page=PAGE)
max_samples = url_select_slider(
    "Rows used by TwoNN / MLE", SAMPLES, "samples", page=PAGE, default=2000
)

path = inside_runs(choice, root)
if path is None:
    st.error("That store is outside the runs directory.")
    st.stop()
try:
    frame = curves((str(path),), ((path / "manifest.json").stat().st_mtime,), max_samples)
except (WorkbenchError, OSError) as e:
    st.error(f"Cannot compute the geometry of `{choice}`: {e}")
    st.stop()

frame = label(frame)
spec = names[choice]["spec"]
cols = st.columns(4)
cols[0].metric("model", str(spec.get("model")))
cols[1].metric("dataset", str(spec.get("dataset")))
cols[2].metric("rows", f"{names[choice]['n_rows']:,}")
cols[3].metric("sites", frame["site"].nunique())

st.subheader("Over layers")
for title, group in PANELS:
    part = frame[frame["analysis"].isin(group)]
    if part.empty:
        continue
    fig = px.line(part, x="site", y="value", color="estimate", markers=True, title=title)
    fig.update_layout(legend_title_text="", xaxis_title="site (by depth)")
    st.plotly_chart(fig)
with st.expander("Values"):
    st.dataframe(
        frame.pivot_table(index=["layer", "site"], columns="estimate", values="value"),
    )

st.subheader("Over checkpoints")
key = series_key(names[choice])
siblings = sorted(
    (n for n, s in names.items() if series_key(s) == key),
    key=lambda n: names[n]["spec"].get("checkpoint_step") or 0,
)
steps = {names[n]["spec"].get("checkpoint_step") for n in siblings}
saved = [r for r in list_results(root) if r["analysis"] == "geometry-curves"]
over: pd.DataFrame | None = None
if len(steps) > 1 and None not in steps:
    st.caption(f"{len(siblings)} stores of `{key[0]}` on `{key[1]}`: steps {sorted(steps)}")
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
    st.plotly_chart(fig)
