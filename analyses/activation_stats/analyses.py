"""Activation statistics per site: norms, scale, and how concentrated the variance is.

Computed from the store's streaming statistics when the source is a store (no activation is
read again), or from the rows of an array with the same `RunningStats` code. Metrics, for rows
x_i in R^d, i = 1..n:

- `mean_norm`: (1/n) sum_i ||x_i||_2;
- `rms`: sqrt((1/(n d)) sum_{i,j} x_ij^2), from per-dim mean and population variance
  (ddof=0): sqrt(mean_j(var_j + mean_j^2));
- `max_abs`: max_{i,j} |x_ij|, and `max_abs_over_rms` (large values flag massive activations,
  Sun et al. 2024, which the massive-activations analysis studies properly);
- `top_dim_variance_share`: max_j var_j / sum_j var_j (1/d for isotropic data, 1 when one
  dimension carries all the variance);
- `mean_share`: ||mean||^2 / (||mean||^2 + sum_j var_j), the share of the second moment that
  is a common offset (0 for centred data, 1 for a constant vector).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.analysis.registry import Analysis
from workbench.analysis.results import Result
from workbench.analysis.sources import Source


@dataclass(frozen=True)
class Params:
    """No settings: the statistics are descriptive. `topk` sets how many of the largest |a|
    entries are listed when computing from arrays (a store keeps the k it was written with)."""

    topk: int = 8


def site_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Headline metrics from a `RunningStats.summary()` dict (see the module docstring)."""
    mean = np.asarray(summary["mean"], dtype=np.float64)
    var = np.asarray(summary["var"], dtype=np.float64)
    second = var + mean**2
    rms = float(np.sqrt(second.mean()))
    max_abs = float(np.max(summary["max_abs"]))
    total_var = float(var.sum())
    mean_sq = float((mean**2).sum())
    return {
        "n_rows": float(summary["count"]),
        "mean_norm": float(summary["mean_norm"]),
        "rms": rms,
        "max_abs": max_abs,
        "max_abs_over_rms": max_abs / rms if rms > 0 else float("nan"),
        "top_dim_variance_share": float(var.max() / total_var) if total_var > 0 else float("nan"),
        "mean_share": mean_sq / (mean_sq + total_var) if mean_sq + total_var > 0 else float("nan"),
    }


def run(source: Source, params: Params) -> Result:
    """Activation statistics of one site (store) or one array (n, d)."""
    from workbench.store import RunningStats

    if source.store is not None and source.site is not None:
        summary = source.store.stats(source.site)
    else:
        summary = RunningStats(topk=params.topk).update(source.matrix(), row_offset=0).summary()
    metrics = site_metrics(summary)
    site = source.site or "arrays"
    step = (source.provenance.get("spec") or {}).get("checkpoint_step")
    frame = pd.DataFrame(
        [
            {"site": site, "checkpoint_step": step, "metric": k, "value": v}
            for k, v in metrics.items()
        ]
    )
    top = summary["topk"][0] if summary["topk"] else {}
    headline = {**metrics, "top_entry": top}
    return Result(
        analysis="activation-stats",
        frame=frame,
        headline=headline,
        params=asdict(params),
        provenance=source.provenance,
    )


ANALYSIS = Analysis(
    name="activation-stats",
    params=Params,
    run=run,
    inputs=("acts",),
    summary="norms, RMS, max |a|, variance concentration per site",
)
