"""Home page: the stores under the runs directory, a store's manifest and statistics.

Thin: reads stores through `workbench.store`, draws plotly figures. View state (store, site)
lives in the URL's query parameters, so every view has a shareable link.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from workbench.app_export import show_figure, show_table
from workbench.app_state import url_selectbox
from workbench.errors import StoreError
from workbench.results import list_results
from workbench.runsdir import inside_runs, runs_root, stores_by_path
from workbench.sites import layer_index
from workbench.store import ActivationStore
from workbench.zoo import list_zoo

st.set_page_config(page_title="Workbench: stores", layout="wide")
root = runs_root()
PAGE = "home"  # namespaces its widgets' session state (shared by every page of the app)


@st.cache_data(show_spinner=False)
def store_table(path: str, manifest_mtime: float) -> tuple[dict, pd.DataFrame, dict]:
    """Manifest, per-site statistics table and per-site per-dim max |a| (keyed by mtime so a
    re-captured store is re-read)."""
    store = ActivationStore(path)
    rows, max_abs = [], {}
    for site in store.sites:
        stats = store.stats(site)
        var = np.asarray(stats["var"])
        mean = np.asarray(stats["mean"])
        top = stats["topk"][0] if stats["topk"] else {}
        rows.append(
            {
                "site": site,
                "layer": layer_index(site),
                "width": store.site_info(site)["width"],
                "mean norm": stats["mean_norm"],
                "rms": float(np.sqrt((var + mean**2).mean())),
                "max |a|": float(np.max(stats["max_abs"])),
                "top dim": top.get("dim"),
                "top token id": top.get("token_id"),
                "top-dim variance share": float(var.max() / var.sum())
                if var.sum() > 0
                else float("nan"),
            }
        )
        max_abs[site] = np.asarray(stats["max_abs"]).tolist()
    return store.manifest, pd.DataFrame(rows), max_abs


st.title("Interpretability workbench")
st.caption(f"Runs directory: `{root}`")

zoo_rows = pd.DataFrame(list_zoo())
if not zoo_rows.empty:
    st.subheader("Model zoo")
    show_table(
        zoo_rows[["name", "dataset", "kind", "built", "metric", "value", "threshold", "passed"]],
        "model zoo",
        hide_index=True,
    )
results = list_results(root)
if results:
    counts = pd.DataFrame(results).groupby("analysis").size().rename("results").reset_index()
    st.caption("Results: " + ", ".join(f"{r.analysis} ({r.results})" for r in counts.itertuples()))

st.subheader("Stores")
relative = stores_by_path(root, complete_only=False)
if not relative:
    st.info(
        f"No stores under `{root}` yet. Run `workbench demo`, or "
        f"`workbench capture --model minilm --sites 'blocks.*.hook_resid_post' --dataset text "
        f"--out {root}/stores/NAME`."
    )
    st.stop()

unreadable = {name: s["error"] for name, s in relative.items() if s["error"]}
incomplete = [name for name, s in relative.items() if not s["complete"] and not s["error"]]
complete = [name for name, s in relative.items() if s["complete"]]
if unreadable:
    st.error(
        "Unreadable stores (not shown):\n"
        + "\n".join(f"- `{name}`: {error}" for name, error in unreadable.items())
    )
if incomplete:
    st.warning(
        "Incomplete (interrupted) stores, resumable by re-running their capture: "
        + ", ".join(incomplete)
    )
if not complete:
    st.stop()

choice = url_selectbox("Store", complete, "store", page=PAGE)
path = inside_runs(choice, root)
if path is None:
    st.error("That store is outside the runs directory.")
    st.stop()

try:
    manifest, table, max_abs = store_table(str(path), (path / "manifest.json").stat().st_mtime)
except (StoreError, OSError) as e:  # corrupt, or replaced since it was listed
    st.error(f"Cannot read the store `{choice}`: {e}")
    st.stop()
spec = manifest["spec"]
cols = st.columns(5)
cols[0].metric("model", str(spec.get("model")))
cols[1].metric("dataset", str(spec.get("dataset")))
cols[2].metric("examples", f"{manifest.get('n_examples', 0):,}")
cols[3].metric("rows (tokens)", f"{manifest.get('n_rows', 0):,}")
cols[4].metric("sites", len(table))

st.subheader("Per-site statistics")
show_table(table.drop(columns=["layer"]), f"{choice} per-site statistics", hide_index=True)

ordered = table.assign(order=table["layer"].fillna(-1)).sort_values("order", kind="stable")
long = ordered.melt(
    id_vars=["site"], value_vars=["mean norm", "rms", "max |a|"], var_name="statistic"
)
fig = px.line(
    long,
    x="site",
    y="value",
    color="statistic",
    markers=True,
    log_y=True,
    title="Scale through depth (log scale)",
)
# plotly's automatic log ticks label 0.5 and 5 both "5" and crowd 1..9; spell values out
positive = long["value"][long["value"] > 0]
decades = np.log10(positive.max() / positive.min()) if len(positive) else 0.0
fig.update_yaxes(dtick="D2" if decades <= 3 else 1, tickformat="~g")
show_figure(fig, f"{choice} scale through depth")

site_names = list(table["site"])
site = url_selectbox("Site", site_names, "site", page=PAGE, default=site_names[-1])
dims = pd.DataFrame({"dim": np.arange(len(max_abs[site])), "max |a|": max_abs[site]})
show_figure(
    px.bar(dims, x="dim", y="max |a|", title=f"{site}: largest |activation| per dimension"),
    f"{choice} {site} max activation per dim",
)

with st.expander("Manifest (spec and provenance)"):
    st.json(
        {
            "spec": spec,
            "provenance": manifest.get("provenance", {}),
            "schema_version": manifest.get("schema_version"),
            "sites": manifest.get("sites"),
        }
    )
