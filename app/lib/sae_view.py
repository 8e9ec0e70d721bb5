"""The SAE features page's view: a feature report's density and training charts, the latent to
open first, and one latent's histogram, label agreement and shaded contexts. Pure functions (no
Streamlit).

    density_figure(stats), training_figure(read_log(sae_dir)), first_latent(stats)
    histogram_figure(report), agreement_figure(report), context_html(ctx, scale)
    architecture_line(sae), thresholds(sae), threshold_figure(sae, latent)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from analyses.sae.feature_page import shade

TRAINING = ("batch_explained_variance", "dead_fraction")  # what the training chart draws
#: the settings named after each architecture in `architecture_line`
SETTINGS = {
    "topk": ("k",),
    "batchtopk": ("k",),
    "relu": ("l1_coeff", "decoder_norm"),
    "jumprelu": ("l0_coeff", "bandwidth"),
}


def architecture_line(sae: Any) -> str:
    """ "jumprelu SAE, 128 -> 1024 latents, l0_coeff 0.02, bandwidth 0.001": the
    architecture, its size and the settings that set its sparsity."""
    config = sae.config
    parts = [f"{config.architecture} SAE, {sae.d_in} -> {sae.d_sae} latents"]
    parts += [
        f"{name} {getattr(config, name):g}"
        if isinstance(getattr(config, name), float)
        else f"{name} {getattr(config, name)}"
        for name in SETTINGS.get(config.architecture, ())
    ]
    return ", ".join(parts)


def thresholds(sae: Any) -> np.ndarray | None:
    """The per-latent thresholds (d_sae,) of a JumpReLU SAE (z = h where h > threshold), None
    for an architecture without learned per-latent thresholds."""
    if getattr(sae.config, "architecture", "") != "jumprelu":
        return None
    return np.asarray(sae.threshold.detach().cpu().numpy(), dtype=np.float64)


def threshold_figure(sae: Any, latent: int | None = None) -> go.Figure | None:
    """Histogram of a JumpReLU SAE's learned thresholds (in the raw activations' pre-activation
    units), the chosen latent's marked; None for other architectures."""
    values = thresholds(sae)
    if values is None:
        return None
    fig = px.histogram(
        x=values,
        nbins=min(60, max(10, len(values) // 8)),
        labels={"x": "threshold", "y": "latents"},
        title=f"JumpReLU thresholds (median {np.median(values):.3g})",
    )
    fig.update_yaxes(title_text="latents")
    if latent is not None:
        fig.add_vline(x=float(values[latent]), line_dash="dash", annotation_text=f"latent {latent}")
    return fig


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
