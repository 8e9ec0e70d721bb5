"""Massive activations: |a| over (position x dimension) of one example at one layer, the top
entries with their dims and tokens, the statistics through depth, and (from a tracking job's
folder `<runs>/massive/<name>/`) the trajectory over checkpoints with its fitted curve and the
ablation result.

Thin: `analyses.massive` computes, this page draws. View state (store, site, example, job) in
the URL's query parameters. Tracking loads every checkpoint, so it runs as a job outside the
page: `python -m analyses.massive_track toy-lm --out <runs>/massive/toy-lm`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analyses._curves import fit_curve
from analyses.massive import Params, detect, token_decoder
from analyses.massive_track import ablation_summary
from workbench.app_export import show_figure, show_table
from workbench.app_state import url_number_input, url_selectbox
from workbench.errors import WorkbenchError
from workbench.runsdir import inside_runs, runs_root
from workbench.sites import layer_index
from workbench.sources import Source
from workbench.store import ActivationStore, list_stores

st.set_page_config(page_title="Workbench: massive activations", layout="wide")
root = runs_root()
PAGE = "massive"  # namespaces its widgets' session state (shared by every page of the app)


def _choose(label: str, options: list, key: str, default_last: bool = False):
    """A selectbox whose choice lives in the URL under `key` (the first or last option if none)."""
    default = options[-1] if default_last and options else None
    return url_selectbox(label, options, key, page=PAGE, default=default)


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
    """The tracked frame and, per layer, the exp-log fit: R^2, peak step and the curve."""
    trajectory = pd.read_parquet(Path(path) / "trajectory.parquet")
    fits, curves = [], []
    for layer, group in trajectory.groupby("layer"):
        steps, ratio = group["step"].to_numpy(float), group["ratio"].to_numpy(float)
        try:
            fit = fit_curve(steps, ratio)
        except WorkbenchError as exc:
            fits.append({"layer": layer, "r2": np.nan, "peak_step": None, "note": str(exc)})
            continue
        grid = np.unique(np.r_[np.geomspace(1, steps.max(), 200), steps])
        curves.append(pd.DataFrame({"layer": layer, "step": grid, "fit": fit.predict(grid)}))
        fits.append({"layer": layer, "r2": fit.r2, "peak_step": fit.peak_step, "note": fit.family})
    return pd.DataFrame(fits), pd.concat(curves) if curves else pd.DataFrame()


st.title("Massive activations")
st.caption(
    "Sun et al. 2024: an activation is massive if |a| > 100 and > 1000x the median |a| of its "
    "hidden state; small models rarely pass the absolute part, so both parts are counted apart."
)

stores = {
    str(Path(s["path"]).resolve().relative_to(root)): s
    for s in list_stores(root)
    if s["complete"] and not s["error"]
}
if not stores:
    st.info(f"No complete stores under `{root}`. Run `workbench demo` first.")
    st.stop()
choice = _choose("Store", list(stores), "store")
path = inside_runs(choice, root)
if path is None:
    st.error("That store is outside the runs directory.")
    st.stop()
mtime = (path / "manifest.json").stat().st_mtime
site = _choose("Site", list(stores[choice]["sites"]), "site", default_last=True)
try:
    summary = site_summary(str(path), mtime, site)
except WorkbenchError as exc:
    st.error(f"Cannot analyse `{choice}` / `{site}`: {exc}")
    st.stop()

crit = summary["criteria"]
cols = st.columns(5)
cols[0].metric("max |a|", f"{summary['max_abs']:.3g}")
ratio = summary["ratio_to_median"]
cols[1].metric("top |a| / row median", "inf" if ratio is None else f"{ratio:.0f}x")
seq = summary["sequence_ratio"]
cols[2].metric("sequence max / median", "inf" if seq is None else f"{seq:.1f}x")
cols[3].metric(f"|a| > {crit['abs_threshold']:g}", f"{crit['n_abs']:,}")
cols[4].metric(f"> {crit['rel_threshold']:g}x median", f"{crit['n_rel']:,}")

st.subheader("|a| over position x dimension")
n_examples = int(summary["n_examples"])
example = url_number_input(
    "Example", "example", page=PAGE, default=0, min_value=0, max_value=max(0, n_examples - 1)
)
values, labels = example_rows(str(path), mtime, site, example)
fig = px.imshow(
    values,
    y=labels,
    aspect="auto",
    color_continuous_scale="Inferno",
    labels={"x": "dimension", "y": "position:token", "color": "|a|"},
    title=f"{site}, example {example}",
)
fig.update_yaxes(type="category", autorange="reversed")
show_figure(fig, f"{choice} {site} example {example} abs activations")

left, right = st.columns(2)
top = pd.DataFrame(summary["top_values"])
shown = [c for c in ("abs", "value", "dim", "example", "position", "token", "ratio_to_median")]
left.markdown("**Largest |a|**")
show_table(
    top[[c for c in shown if c in top.columns]],
    f"{choice} {site} largest activations",
    container=left,
    hide_index=True,
)
dims = pd.DataFrame(summary["recurring_dims"])
if not dims.empty:
    dims["dim"] = dims["dim"].astype(str)
    show_figure(
        px.bar(
            dims,
            x="dim",
            y="share_examples_top",
            title="Dimensions holding each example's largest |a| (share of examples)",
            labels={"share_examples_top": "share of examples"},
        ).update_xaxes(type="category"),
        f"{choice} {site} recurring massive dims",
        container=right,
    )
carriers = ", ".join(
    f"{t.get('token', t['token_id'])!r} ({t['n_examples']})" for t in summary["carrier_tokens"]
)
first = summary["share_first_position"]
st.caption(
    f"Tokens carrying each example's largest |a|: {carriers}. "
    + ("" if first is None else f"At the first position in {first:.0%} of examples.")
)

st.subheader("Through depth")
by_site = []
for name in stores[choice]["sites"]:
    s = site_summary(str(path), mtime, name)
    by_site.append(
        {
            "site": name,
            "layer": layer_index(name),
            "max |a|": s["max_abs"],
            "sequence max/median": s["sequence_ratio"],
            "top dim": s["top_values"][0]["dim"],
        }
    )
depth = pd.DataFrame(by_site)
long = depth.melt(id_vars=["site"], value_vars=["max |a|", "sequence max/median"])
show_figure(
    px.line(long, x="site", y="value", color="variable", markers=True, log_y=True,
            title="Largest |a| and the paper's max/median ratio per site")
    .update_yaxes(dtick=1, tickformat="~g"),
    f"{choice} massive activations through depth",
)  # fmt: skip

st.subheader("Over training, and what they do")
jobs_root = root / "massive"
jobs = sorted(p.parent.name for p in jobs_root.glob("*/trajectory.parquet"))
if not jobs:
    st.info(
        "No tracking job yet. Run `python -m analyses.massive_track toy-lm --out "
        f"{jobs_root}/toy-lm` (captures every checkpoint, fits the curves, ablates)."
    )
    st.stop()
job = _choose("Tracking job", jobs, "job")
folder = jobs_root / job
trajectory = pd.read_parquet(folder / "trajectory.parquet")
fits, curves = fitted(str(folder), (folder / "trajectory.parquet").stat().st_mtime)
fig = go.Figure()
palette = px.colors.qualitative.Plotly
for i, (layer, group) in enumerate(trajectory.groupby("layer")):
    colour = palette[i % len(palette)]
    fig.add_scatter(x=group["step"] + 1, y=group["ratio"], mode="markers", name=f"layer {layer}",
                    marker={"color": colour})  # fmt: skip
    curve = curves[curves["layer"] == layer] if not curves.empty else curves
    if not curve.empty:
        fig.add_scatter(x=curve["step"] + 1, y=curve["fit"], mode="lines",
                        name=f"layer {layer} fit", line={"color": colour})  # fmt: skip
fig.update_xaxes(type="log", title="training step + 1", dtick=1, tickformat="~g")
fig.update_yaxes(title="max |a| / median |a| (per sequence, averaged)")
fig.update_layout(title=f"{job}: max/median ratio per layer, fit A e^(-lambda x) log x + K")
show_figure(fig, f"{job} massive ratio over training")
show_table(fits, f"{job} massive ratio fits", hide_index=True)

losses = pd.read_parquet(folder / "ablation.parquet")
table = ablation_summary(losses)
bars = table.melt(id_vars=["mode"], value_vars=["delta_massive", "delta_random_mean"],
                  var_name="entries", value_name="change in loss")  # fmt: skip
bars["entries"] = bars["entries"].map({"delta_massive": "massive", "delta_random_mean": "random"})
errors = table.set_index("mode")["delta_random_std"]
bars["std"] = [errors[m] if e == "random" else 0.0 for m, e in zip(bars["mode"], bars["entries"], strict=True)]  # fmt: skip
site_name = str(losses["site"].iloc[0])
show_figure(
    px.bar(bars, x="mode", y="change in loss", color="entries", barmode="group", error_y="std",
           title=f"Ablation at {site_name}: massive entries vs as many random ones"),
    f"{job} ablation at {site_name}",
)  # fmt: skip
show_table(table, f"{job} ablation summary at {site_name}", hide_index=True)
entries = pd.read_parquet(folder / "entries.parquet")
with st.expander("Ablated massive entries"):
    show_table(entries, f"{job} ablated massive entries", hide_index=True)
