"""The Steering page's view: the directions it offers, the generations side by side, and a saved
sweep's charts (sites x coefficients heatmap, dose-response against random directions, collateral
KL). Pure functions (no Streamlit).

    CONCEPTS["topic: sports"]                          # ("topic", index) for the extractor
    directions(vectors, saes, codebooks)               # concepts, saved vectors, SAE latents, codes
    dictionary_source("SAE latent: sae/toy")           # ("sae", "sae/toy"), or None
    sweep_sources(params)                              # what a saved sweep swept, in words
    generations_table(prompts, decode, plain, steered, random)
    sweep_heatmap(frame, metric), dose_response_figure(frame, metric), collateral_figure(result)
    sweep_verdict(result)                               # best site, or None + why
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
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
#: prefixes of a saved SAE's / codebook model's folder among the directions: the page then asks
#: for the latent / code (`analyses.steering.dictionaries`)
DICTIONARIES = {"sae": "SAE latent: ", "codebook": "codebook code: "}


def directions(
    vectors: Sequence[str], saes: Sequence[str] = (), codebooks: Sequence[str] = ()
) -> list[str]:
    """The directions to offer: every concept, every saved vector (by its path), then every
    saved SAE and codebook model (by its folder; a latent / code of it)."""
    return (
        list(CONCEPTS)
        + [f"{SAVED}{key}" for key in vectors]
        + [f"{DICTIONARIES['sae']}{key}" for key in saes]
        + [f"{DICTIONARIES['codebook']}{key}" for key in codebooks]
    )


def dictionary_source(direction: str) -> tuple[str, str] | None:
    """("sae" | "codebook", folder relative to the runs directory) of a dictionary direction,
    None for a concept or a saved vector."""
    for kind, prefix in DICTIONARIES.items():
        if direction.startswith(prefix):
            return kind, direction.removeprefix(prefix)
    return None


def saved_dictionaries(
    root: Path, model: str | None = None, limit: int = 200
) -> tuple[list[str], list[str]]:
    """(SAE folders, codebook model folders) under `root`, relative to it: an SAE is a folder
    with our `config.json` + `sae.safetensors` or SAELens's `cfg.json` + `sae_weights
    .safetensors` (a training run's `checkpoint/` is not one); a codebook model a folder with
    `codebook.json`. With `model` (a zoo name), only those made on it or that do not say which
    model they were made on (`dictionary_model`). At most `limit` of each, in path order."""
    root = root.resolve()
    saes = {}
    for name, weights in (
        ("config.json", "sae.safetensors"),
        ("cfg.json", "sae_weights.safetensors"),
    ):
        for path in root.glob(f"**/{weights}"):
            if (path.parent / name).is_file() and path.parent.name != "checkpoint":
                saes[str(path.parent.relative_to(root))] = path.parent / name
    books = {str(p.parent.relative_to(root)): p for p in root.glob("**/codebook.json")}

    def kept(found: dict[str, Path]) -> list[str]:
        return sorted(
            folder
            for folder, config in found.items()
            if model is None or dictionary_model(config) in (None, model)
        )[:limit]

    return kept(saes), kept(books)


def dictionary_model(config: Path) -> str | None:
    """The model (name without `@STEP`) a dictionary's config file says it was made on: a
    codebook's `base`, our SAE's store spec `model`, SAELens's `model_name`; None when it does
    not say (or the file cannot be read)."""
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    found = (
        data.get("base")
        or data.get("meta", {}).get("source", {}).get("spec", {}).get("model")
        or data.get("model_name")
    )
    return str(found).partition("@")[0] if found else None


def sweep_sources(params: dict[str, Any]) -> str | None:
    """One line naming what a saved sweep swept (method, SAE latent or code, site, scale), or
    None for sweeps saved without it."""
    vectors = params.get("vectors")
    if not vectors:
        return None
    parts = []
    for v in vectors:
        what = v.get("method", "?")
        if "latent" in v:
            what = f"SAE latent {v['latent']}"
        elif "code" in v:
            what = f"codebook code {v['code']}"
        scale = v.get("scale")
        unit = f", coefficient x {scale:.3g} (site's typical norm)" if scale else ""
        parts.append(f"{what} at {v.get('site', '?')}{unit}")
    return "Swept: " + "; ".join(parts) + "."


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
