"""The Steering page's view: the directions it offers, the generations side by side, and a saved
sweep's charts (sites x coefficients heatmap, dose-response against random directions, collateral
KL). Pure functions (no Streamlit).

    CONCEPTS["topic: sports"]                          # ("topic", index) for the extractor
    generations_table(prompts, decode, plain, steered, random)
    sweep_heatmap(frame, metric), dose_response_figure(frame, metric), collateral_figure(result)
    sweep_verdict(result)                               # best site, or None + why
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from analyses.steering.report import BestSite, best_site, sweep_effects
from workbench.analysis.results import Result
from workbench.data.grammar import TOPICS

#: a concept direction's name -> (grammar-lm label, value) it is extracted from
CONCEPTS = {"positive sentiment": ("sentiment", 1), "negative sentiment": ("sentiment", 0)}
CONCEPTS.update({f"topic: {name}": ("topic", i) for i, name in enumerate(TOPICS)})
SAVED = "saved: "  # prefixes a saved vector's path among the directions


def directions(vectors: Sequence[str]) -> list[str]:
    """The directions to offer: every concept, then every saved vector (by its path)."""
    return list(CONCEPTS) + [f"{SAVED}{key}" for key in vectors]


def generations_table(
    prompts: list[str], decode: Callable[..., str], plain: Any, steered: Any, random: Any
) -> pd.DataFrame:
    """One row per prompt: its unsteered, steered and random-direction generations (token ids
    decoded without special tokens)."""

    def text(tokens: Any) -> list[str]:
        return [decode(t, skip_special_tokens=True) for t in tokens]

    return pd.DataFrame(
        {
            "prompt": prompts,
            "unsteered": text(plain),
            "steered": text(steered),
            "random direction, same norm": text(random),
        }
    )


def sweep_verdict(result: Result) -> BestSite:
    """A saved sweep's best site and sentence, recomputed from its frame by the same rule as the
    CLI's report (`analyses.steering.report.sweep_effects` then `best_site`), so sweeps saved
    before the rule existed, or without the headline, are judged by it too."""
    metric = result.params.get("metric", "target_minus_opposite")
    return best_site(sweep_effects(result.frame, metric)[1])


def sweep_frame(result_frame: pd.DataFrame, params: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """A saved sweep's rows of its metric (`params["metric"]`, default target_minus_opposite),
    and the metric's name."""
    metric = params.get("metric", "target_minus_opposite")
    return result_frame[result_frame.metric == metric], metric


def sweep_heatmap(frame: pd.DataFrame, metric: str) -> go.Figure:
    """The metric under the concept direction over sites x coefficients, diverging around its
    value at coefficient 0."""
    concept = frame[frame.direction == "concept"].pivot_table(
        index="site", columns="coeff", values="value"
    )
    fig = px.imshow(
        concept.values,
        x=[f"{c:g}" for c in concept.columns],
        y=list(concept.index),
        aspect="auto",
        color_continuous_scale="RdBu",
        color_continuous_midpoint=float(frame[frame.coeff == 0].value.mean()),
        labels={"x": "coefficient", "y": "site", "color": metric},
        title=f"{metric} under the concept direction",
    )
    return fig.update_xaxes(type="category")


def dose_response_figure(frame: pd.DataFrame, metric: str) -> go.Figure:
    """The metric's mean over coefficients, a line per site, the concept direction solid and
    the random directions dashed."""
    curves = frame.groupby(["site", "direction", "coeff"], as_index=False).value.mean()
    return px.line(
        curves, x="coeff", y="value", color="site", line_dash="direction", markers=True,
        labels={"value": metric, "coeff": "coefficient"},
        title="Dose-response: concept direction (solid) vs random directions of the same norm "
        "(dashed)",
    )  # fmt: skip


def collateral_figure(result_frame: pd.DataFrame) -> go.Figure | None:
    """The concept direction's KL from the unsteered next-token distribution on neutral text
    over coefficients, a line per site; None when the sweep measured none."""
    collateral = result_frame[result_frame.metric == "kl"]
    if collateral.empty:
        return None
    kl = (
        collateral[collateral.direction == "concept"]
        .groupby(["site", "coeff"], as_index=False)
        .value.mean()
    )
    return px.line(
        kl, x="coeff", y="value", color="site", markers=True,
        labels={"value": "KL from unsteered (nats)", "coeff": "coefficient"},
        title="Collateral: KL from the unsteered next-token distribution on neutral text",
    )  # fmt: skip
