"""Overview page: one model's layers at a glance. Per site, the headline numbers of its saved
results (those the analysis families declare: intrinsic dimension, anisotropy, effective rank,
max |a| ratio, probe accuracy, NC1, ... where saved) and, from batch runs over checkpoints,
sparklines of those metrics over training; links drill into the pages that show each in detail.
Thin: `workbench_app.lib.overview` gathers, this page draws. View state (store) in the URL.

A click on a row of the table (its selection box) drills into that layer: links to every page at
that site, and the reports saved there that the families declare (an SAE's feature report with
its best latents, a codebook model with its most used codes, ...), each item a link. The
selected site is kept in the URL (`site`); a link with one opens with its row selected.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from workbench_app.lib import overview
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.pickers import stop_if_empty
from workbench_app.lib.state import url_selectbox
from workbench_app.services.runsdir import runs_root

st.set_page_config(page_title="Workbench: overview", layout="wide")
root = runs_root()
PAGE = "overview"  # namespaces its widgets' session state (shared by every page of the app)


@st.cache_data(show_spinner=False, ttl=30)
def drill(root_dir: str, store: str, site: str, sites: tuple[str, ...]) -> dict:
    """`layer_panel` of a site (its reports found by walking the runs dir: cached a
    little while, so a new one appears within half a minute)."""
    return overview.layer_panel(Path(root_dir), store, site, sites)


@st.cache_data(show_spinner=False, ttl=30)
def store_tables(root_dir: str, store: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`site_headlines` and `training_curves` of `store` (every saved result and batch read:
    cached a little while, so a row click does not read them all again)."""
    return overview.site_headlines(Path(root_dir), store), overview.training_curves(
        Path(root_dir), store
    )


def draw_panel(store: str, site: str, sites: list[str]) -> None:
    """The drill-down of one layer: pages at the site, then per report kind its reports here."""
    panel = drill(str(root), store, site, tuple(sites))
    st.subheader(f"Layer `{site}`")
    pages, *columns = st.columns(1 + len(panel["reports"]))
    with pages:
        st.markdown("**This site on every page**")
        for link in panel["links"]:
            st.markdown(f"- [{link['page']}]({link['url']}): {link['what']}")
    for column, kind in zip(columns, panel["reports"], strict=True):
        with column:
            st.markdown(f"**{kind['title']}**")
            for report in kind["reports"]:
                st.markdown(f"[{report['folder']}]({report['url']}): {report['summary']}")
                for item in report["items"]:
                    st.markdown(f"- [{item['label']}]({item['url']}){item['text']}")
            if not kind["reports"]:
                st.caption(kind["hint"])


st.title("Model overview")
st.caption(
    "Headline metrics per layer from the saved results of a store, and their curves over "
    f"training from batch runs. Runs directory: `{root}`"
)
stop_if_empty(root)
stores = overview.result_stores(root)
if not stores:
    st.info(
        f"No saved results under `{root}/results`. Run `workbench demo`, or "
        "`workbench analyze NAME --store DIR --out RUNS/results/NAME/STORE`."
    )
    st.stop()
store = url_selectbox(
    "Model (store)",
    stores,
    "store",
    page=PAGE,
    default=lambda _wanted: overview.richest_result_store(root, stores),  # none or unknown
)

table, curves = store_tables(str(root), store)
metrics = [c for c in table.columns if c not in ("site", "layer")]
shown = table.merge(curves, on="site", how="left") if not curves.empty else table
st.subheader(f"{store}: {len(table)} sites")
config: dict = {c: st.column_config.NumberColumn(c, format="%.3g") for c in metrics}
for column in overview.curve_columns():
    if column in shown.columns:
        config[column] = st.column_config.LineChartColumn(column, width="small")
sites = [str(s) for s in shown["site"]]
wanted = st.query_params.get("site")
if wanted is not None and wanted not in sites:
    st.warning(f"No site `{wanted}` in {store}'s table; valid: {', '.join(sites)}.")
# The table's selection is its own widget state (its identity is its key alone, so it never
# resets); the URL's site only seeds it on the table's first drawing, and follows it after.
picked = show_table(
    shown,
    f"{store} overview",
    hide_index=True,
    column_config=config,
    width="stretch",
    key=f"{PAGE}-sites-{store}",  # a new table (and selection) per store
    on_select="rerun",
    selection_mode="single-row",
    selection_default={"selection": {"rows": [sites.index(wanted)]}} if wanted in sites else None,
)
rows = picked["selection"]["rows"]
site = sites[rows[0]] if rows else None
if site is None:
    st.query_params.pop("site", None)
else:
    st.query_params["site"] = site
if not curves.empty:
    st.caption(
        "Sparklines: the batch results over checkpoints for this model (`workbench batch run`), "
        "one point per step in training order; steps column: first..last (count)."
    )
if site is not None:
    draw_panel(store, site, sites)
else:
    st.caption("Select a row (the box at its left) to drill into that layer.")

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
    show_figure(fig, f"{store} headline metrics through depth", width="stretch")
    st.caption("Sites in layer order along each x axis (hover for the name).")

st.subheader("Drill down")
for link in overview.store_links(store):
    st.markdown(f"- [{link['page']}]({link['url']}): {link['what']}")
