"""Overview page: one model's layers at a glance. Per site, the headline numbers of its saved
results (intrinsic dimension, anisotropy, effective rank, max |a| ratio, probe accuracy, NC1
where saved) and, from batch runs over checkpoints, sparklines of those metrics over training;
links drill into the pages that show each in detail. Thin: `workbench.overview` gathers, this
page draws. View state (store) in the URL.
"""

from __future__ import annotations

from urllib.parse import quote

import pandas as pd
import plotly.express as px
import streamlit as st

from workbench.app_state import url_selectbox
from workbench.overview import CURVES, result_stores, site_headlines, training_curves
from workbench.runsdir import runs_root

st.set_page_config(page_title="Workbench: overview", layout="wide")
root = runs_root()
PAGE = "overview"  # namespaces its widgets' session state (shared by every page of the app)

st.title("Model overview")
st.caption(
    "Headline metrics per layer from the saved results of a store, and their curves over "
    f"training from batch runs. Runs directory: `{root}`"
)
stores = result_stores(root)
if not stores:
    st.info(
        f"No saved results under `{root}/results`. Run `workbench demo`, or "
        "`workbench analyze NAME --store DIR --out RUNS/results/NAME/STORE`."
    )
    st.stop()
default = "toy-lm" if "toy-lm" in stores else stores[0]
store = url_selectbox(
    "Model (store)",
    stores,
    "store",
    page=PAGE,
    default=lambda wanted: default if wanted is None else stores[0],  # no store / an unknown one
)

table = site_headlines(root, store)
curves = training_curves(root, store)
metrics = [c for c in table.columns if c not in ("site", "layer")]
shown = table.merge(curves, on="site", how="left") if not curves.empty else table
st.subheader(f"{store}: {len(table)} sites")
config: dict = {c: st.column_config.NumberColumn(c, format="%.3g") for c in metrics}
for column in CURVES.values():
    if column in shown.columns:
        config[column] = st.column_config.LineChartColumn(column, width="small")
st.dataframe(shown, hide_index=True, column_config=config, width="stretch")
if not curves.empty:
    st.caption(
        "Sparklines: the batch results over checkpoints for this model (`workbench batch run`), "
        "one point per step in training order; steps column: first..last (count)."
    )

if metrics:
    long = table.melt(id_vars=["site", "layer"], value_vars=metrics, var_name="metric").dropna()
    fig = px.line(
        long,
        x="site",
        y="value",
        facet_col="metric",
        facet_col_wrap=4,
        markers=True,
        title=f"{store}: headline metrics through depth",
    )
    fig.update_yaxes(matches=None, showticklabels=True, title_text="")
    fig.update_xaxes(showticklabels=False, title_text="")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.update_layout(height=260 * ((len(metrics) + 3) // 4) + 80)
    st.plotly_chart(fig, width="stretch")
    st.caption("Sites in layer order along each x axis (hover for the name).")

st.subheader("Drill down")
store_path = quote(f"stores/{store}")
links = [
    ("Geometry", f"Geometry?store={store_path}", "intrinsic dimension, anisotropy, rank per site"),
    ("Massive", f"Massive?store={store_path}", "the largest activations, their dims and tokens"),
    ("Similarity", f"Similarity?store={store_path}", "layer x layer similarity"),
    ("Explore", f"Explore?store={store_path}", "a map of one layer's rows; select to contrast"),
    ("SAE features", "SAE_features", "features of the SAEs trained on this run's stores"),
    ("Batch", "Batch", "every metric over checkpoints, as heatmaps"),
]
for name, path, what in links:
    st.markdown(f"- [{name}]({path}): {what}")
if not table.empty:
    with st.expander("Table as CSV"):
        st.download_button(
            "Download", pd.DataFrame(table).to_csv(index=False).encode(), f"{store}-overview.csv"
        )
