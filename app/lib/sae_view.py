"""The SAE features page's view: a feature report's density and training charts, the latent to
open first, and one latent's histogram, label agreement and shaded contexts. Pure functions (no
Streamlit).

    density_figure(stats), training_figure(read_log(sae_dir)), first_latent(stats)
    histogram_figure(report), agreement_figure(report), context_html(ctx, scale)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from analyses.sae.feature_page import shade

TRAINING = ("batch_explained_variance", "dead_fraction")  # what the training chart draws


def density_figure(stats: Any) -> go.Figure:
    """Latents per log10 density bin (`FeatureStats.histogram`), the dead ones counted in the
    title."""
    counts, edges, n_dead = stats.histogram()
    return px.bar(
        x=(edges[:-1] + edges[1:]) / 2,
        y=counts,
        labels={"x": "log10 density", "y": "latents"},
        title=f"Feature density ({n_dead} dead of {len(stats.density)})",
    )


def training_figure(log: list[dict[str, Any]]) -> go.Figure | None:
    """The SAE's training log's steps (`train_log.jsonl`): explained variance and dead fraction
    over tokens; None when the log has no step."""
    steps = pd.DataFrame([r for r in log if r.get("event") == "step"])
    if steps.empty:
        return None
    y = [c for c in TRAINING if c in steps]
    return px.line(steps, x="tokens", y=y, title="Training progress (train_log.jsonl)")


def first_latent(stats: Any, best: pd.DataFrame) -> int:
    """The latent to open first: the best match of the first label value (`best_latents`), else
    the densest latent."""
    return int(best["latent"].iloc[0]) if not best.empty else int(np.argmax(stats.density))


def histogram_figure(report: dict[str, Any]) -> go.Figure:
    """A latent's activation histogram over its active rows (`latent_report`)."""
    counts, edges = report["histogram"]
    return px.bar(
        x=np.array(edges[:-1]),
        y=counts,
        labels={"x": "activation", "y": "rows"},
        title="Activation histogram (active rows)",
    )


def agreement_figure(report: dict[str, Any]) -> go.Figure | None:
    """A latent's precision and recall against each label value of the store; None without
    labels."""
    rows = [
        {"label": f"{r['label']}={r['value']}", "precision": r["precision"], "recall": r["recall"]}
        for r in report.get("labels", [])
    ]
    if not rows:
        return None
    frame = pd.DataFrame(rows).melt(id_vars="label", var_name="metric", value_name="value")
    return px.bar(
        frame,
        x="label",
        y="value",
        color="metric",
        barmode="group",
        title="Agreement with the store's labels",
    )


def context_html(ctx: dict[str, Any], scale: float) -> str:
    """One context's tokens shaded by activation / `scale`, its focus token underlined."""
    return (
        f"<div style='line-height:2'>{shade(ctx['tokens'], ctx['acts'], scale, ctx['focus'])}</div>"
    )
