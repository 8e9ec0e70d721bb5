"""The Home page's view: the stores under the runs directory sorted by state, a store's per-site
statistics as the page tables them, and its charts. Pure functions (no Streamlit).

    complete, incomplete, unreadable = stores_by_state(stores_by_path(root, complete_only=False))
    table, max_abs = store_statistics(ActivationStore(path))
    depth_figure(table, title), max_abs_figure(site, max_abs[site])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px

from analyses.activation_stats.table import max_abs_per_dim, site_table

#: site_table column -> the Home page's column name
COLUMNS = {
    "site": "site",
    "layer": "layer",
    "width": "width",
    "mean_norm": "mean norm",
    "rms": "rms",
    "max_abs": "max |a|",
    "top_dim": "top dim",
    "top_token_id": "top token id",
    "top_dim_variance_share": "top-dim variance share",
}
DEPTH = ["mean norm", "rms", "max |a|"]  # the statistics drawn through depth


def stores_by_state(
    stores: dict[str, dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], list[str], dict[str, str]]:
    """`stores` (`stores_by_path(..., complete_only=False)`) split into the complete ones (name
    -> entry), the names of incomplete (interrupted, resumable) ones, and unreadable ones (name
    -> why)."""
    unreadable = {name: s["error"] for name, s in stores.items() if s["error"]}
    incomplete = [name for name, s in stores.items() if not s["complete"] and not s["error"]]
    complete = {name: s for name, s in stores.items() if s["complete"]}
    return complete, incomplete, unreadable


def results_caption(results: list[dict[str, Any]]) -> str | None:
    """ "Results: analysis (count), ..." of `list_results` entries, by analysis name; None
    without results."""
    if not results:
        return None
    counts = pd.DataFrame(results).groupby("analysis").size()
    return "Results: " + ", ".join(f"{name} ({n})" for name, n in counts.items())


def store_statistics(store: Any) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """The per-site statistics table of `store` (`site_table`, columns named as on the page)
    and site -> per-dimension max |a|."""
    return site_table(store).rename(columns=COLUMNS), max_abs_per_dim(store)


def depth_figure(table: pd.DataFrame, title: str = "Scale through depth (log scale)"):
    """`DEPTH` statistics of `table` over its sites (by layer; sites without one first), log y.
    Plotly's automatic log ticks label 0.5 and 5 both "5" and crowd 1..9, so values are spelled
    out: a tick per 1-2-5 step over at most three decades, else per decade."""
    ordered = table.assign(order=table["layer"].fillna(-1)).sort_values("order", kind="stable")
    long = ordered.melt(id_vars=["site"], value_vars=DEPTH, var_name="statistic")
    fig = px.line(
        long, x="site", y="value", color="statistic", markers=True, log_y=True, title=title
    )
    positive = long["value"][long["value"] > 0]
    decades = np.log10(positive.max() / positive.min()) if len(positive) else 0.0
    fig.update_yaxes(dtick="D2" if decades <= 3 else 1, tickformat="~g")
    return fig


def max_abs_figure(site: str, max_abs: list[float]):
    """Bars of the largest |a| of each dimension of `site`."""
    dims = pd.DataFrame({"dim": np.arange(len(max_abs)), "max |a|": max_abs})
    return px.bar(dims, x="dim", y="max |a|", title=f"{site}: largest |activation| per dimension")


def manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the page's manifest expander shows: spec, provenance, schema version, sites."""
    return {
        "spec": manifest["spec"],
        "provenance": manifest.get("provenance", {}),
        "schema_version": manifest.get("schema_version"),
        "sites": manifest.get("sites"),
    }
