"""Activation statistics of every site of a store, one row per site, from the streaming
statistics gathered at capture (no activation is read again): what the app's Home page tables.

    frame = site_table(ActivationStore("runs/stores/toy-lm"))
    frame.columns: site, layer, width, mean_norm, rms, max_abs, top_dim, top_token_id,
                   top_dim_variance_share
    per_dim = max_abs_per_dim(store)             # site -> (width,) max |a| of each dimension

The metrics are `analyses.activation_stats.analyses.site_metrics` (their definitions there).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analyses.activation_stats.analyses import site_metrics
from workbench.sites.names import layer_index

COLUMNS = ("mean_norm", "rms", "max_abs", "top_dim_variance_share")


def site_table(store: Any) -> pd.DataFrame:
    """One row per site of `store` (in its order): `layer` (the site's layer number, NaN
    without one), `width`, the `COLUMNS` metrics, and the dim and token id of the largest |a|
    the capture kept (`top_dim`, `top_token_id`; None when it kept none)."""
    rows = []
    for site in store.sites:
        stats = store.stats(site)
        metrics = site_metrics(stats)
        top = stats["topk"][0] if stats["topk"] else {}
        rows.append(
            {
                "site": site,
                "layer": layer_index(site),
                "width": store.site_info(site)["width"],
                **{name: metrics[name] for name in COLUMNS},
                "top_dim": top.get("dim"),
                "top_token_id": top.get("token_id"),
            }
        )
    columns = ["site", "layer", "width", *COLUMNS[:3], "top_dim", "top_token_id", COLUMNS[3]]
    return pd.DataFrame(rows, columns=columns)


def max_abs_per_dim(store: Any) -> dict[str, list[float]]:
    """Site -> the largest |a| of each of its dimensions over every row, (width,) as a list."""
    return {site: np.asarray(store.stats(site)["max_abs"]).tolist() for site in store.sites}
