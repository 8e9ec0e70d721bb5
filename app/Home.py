"""Home page: the stores under the runs directory, a store's manifest and statistics.

Thin: `workbench_app.lib.home_view` tables a store's streaming statistics (through
`analyses.activation_stats.table`) and draws its charts. View state (store, site) lives in the
URL's query parameters, so every view has a shareable link.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench.analysis.results import list_results
from workbench.errors import StoreError
from workbench.store import ActivationStore
from workbench.zoo import list_zoo
from workbench_app.lib import home_view
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.pickers import pick_store, require, stop_if_empty
from workbench_app.lib.state import url_selectbox
from workbench_app.services.runsdir import runs_root, stores_by_path

st.set_page_config(page_title="Workbench: stores", layout="wide")
root = runs_root()
PAGE = "home"  # namespaces its widgets' session state (shared by every page of the app)


@st.cache_data(show_spinner=False)
def store_table(path: str, manifest_mtime: float) -> tuple[dict, pd.DataFrame, dict]:
    """Manifest, per-site statistics table and per-site per-dim max |a| (keyed by mtime so a
    re-captured store is re-read)."""
    store = ActivationStore(path)
    return store.manifest, *home_view.store_statistics(store)


st.title("Interpretability workbench")
st.caption(f"Runs directory: `{root}`")
stop_if_empty(root)

zoo_rows = pd.DataFrame(list_zoo())
if not zoo_rows.empty:
    st.subheader("Model zoo")
    show_table(
        zoo_rows[["name", "dataset", "kind", "built", "metric", "value", "threshold", "passed"]],
        "model zoo",
        hide_index=True,
    )
caption = home_view.results_caption(list_results(root))
if caption:
    st.caption(caption)

st.subheader("Stores")
every = require(
    stores_by_path(root, complete_only=False),
    f"No stores under `{root}` yet. Run `workbench demo`, or `workbench capture --model minilm "
    f"--sites 'blocks.*.hook_resid_post' --dataset text --out {root}/stores/NAME`.",
)
complete, incomplete, unreadable = home_view.stores_by_state(every)
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

store = pick_store(root, complete, page=PAGE)
try:
    manifest, table, max_abs = store_table(str(store.path), store.mtime)
except (StoreError, OSError) as e:  # corrupt, or replaced since it was listed
    st.error(f"Cannot read the store `{store.name}`: {e}")
    st.stop()
spec = manifest["spec"]
cols = st.columns(5)
cols[0].metric("model", str(spec.get("model")))
cols[1].metric("dataset", str(spec.get("dataset")))
cols[2].metric("examples", f"{manifest.get('n_examples', 0):,}")
cols[3].metric("rows (tokens)", f"{manifest.get('n_rows', 0):,}")
cols[4].metric("sites", len(table))

st.subheader("Per-site statistics")
show_table(table.drop(columns=["layer"]), f"{store.name} per-site statistics", hide_index=True)
show_figure(home_view.depth_figure(table), f"{store.name} scale through depth")

site_names = list(table["site"])
site = url_selectbox("Site", site_names, "site", page=PAGE, default=site_names[-1])
show_figure(
    home_view.max_abs_figure(site, max_abs[site]), f"{store.name} {site} max activation per dim"
)

with st.expander("Manifest (spec and provenance)"):
    st.json(home_view.manifest_summary(manifest))
