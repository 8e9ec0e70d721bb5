"""Steering playground: pick a concept direction (or a saved vector), a site and a coefficient;
steered and unsteered generations side by side; the sweep heatmap (sites x coefficients) with
its random-direction control, from saved sweeps in the runs directory or computed here.

Directions are extracted on the fly from grammar-lm (diff-in-means, cached) for the zoo's
toy-lm, or read from `*.safetensors` vectors saved under the runs directory by
`workbench steer extract`. View state lives in the URL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from workbench.app_export import show_figure, show_table
from workbench.app_state import url_radio, url_selectbox, url_slider, url_text_area
from workbench.data.grammar import TOPICS
from workbench.errors import WorkbenchError
from workbench.results import Result, list_results
from workbench.runsdir import inside_runs, runs_root
from workbench.sites import expand_sites
from workbench.zoo import list_zoo, zoo_root

PAGE = "steering"
st.set_page_config(page_title="Workbench: steering", layout="wide")
root = runs_root()
CONCEPTS = {"positive sentiment": ("sentiment", 1), "negative sentiment": ("sentiment", 0)}
CONCEPTS.update({f"topic: {name}": ("topic", i) for i, name in enumerate(TOPICS)})


@st.cache_resource(show_spinner="loading model...")
def load(name: str, zoo: str):
    from workbench.zoo import load_series

    series = load_series(name, zoo)
    return series.load(series.steps[-1], device="auto")


@st.cache_resource(show_spinner="extracting the direction...")
def concept_vector(name: str, zoo: str, site: str, concept: str, value: int):
    from analyses.steering import extract
    from analyses.steering.recipes import contrast_inputs

    negative = 1 - value if concept == "sentiment" else None
    positive, others = contrast_inputs("grammar-lm", concept, value, negative, 400)
    return extract.mean_difference(load(name, zoo), positive, others, site, read="mean")


def saved_vectors() -> dict[str, Path]:
    """Vectors saved under the runs dir (a .safetensors with its .json sidecar)."""
    found = {}
    for path in sorted(root.glob("**/*.safetensors"))[:200]:
        meta = path.with_suffix(".json")
        relative = str(path.relative_to(root))
        if meta.is_file() and inside_runs(relative) and "method" in json.loads(meta.read_text()):
            found[relative] = path
    return found


st.title("Steering")
zoo = str(zoo_root())
models = [r["name"] for r in list_zoo() if r["built"] and r["name"] == "toy-lm"]
if not models:
    st.info("Build the zoo's toy-lm first: `workbench zoo build toy-lm` (or `workbench demo`).")
    st.stop()
name = models[0]
handle = load(name, zoo)
sites = expand_sites(handle.sites(), "blocks.*.hook_resid_pre")

vectors = saved_vectors()
choices = list(CONCEPTS) + [f"saved: {key}" for key in vectors]
left, right = st.columns(2)
direction = url_selectbox(
    "Direction",
    choices,
    "direction",
    page=PAGE,
    container=left,
)
site = url_selectbox(
    "Site",
    sites,
    "site",
    page=PAGE,
    default=lambda wanted: sites[min(2, len(sites) - 1)] if wanted is None else sites[0],
    container=left,
)
coeff = url_slider(
    "Coefficient",
    "coeff",
    page=PAGE,
    min_value=-12.0,
    max_value=12.0,
    default=6.0,
    step=0.5,
    container=right,
)
where = url_radio(
    "Where",
    ["after", "all"],
    "where",
    page=PAGE,
    container=right,
    horizontal=True,
    help="after: generated tokens",
)
prompts_text = url_text_area(
    "Prompts (one per line)",
    "prompts",
    page=PAGE,
    default="the dog\nour soup\nthe coach",
    container=right,
)
prompts = [p.strip() for p in prompts_text.splitlines() if p.strip()]
if not prompts:
    st.info("Type at least one prompt.")
    st.stop()

try:
    if direction.startswith("saved: "):
        from analyses.steering import SteeringVector

        vector = SteeringVector.load(vectors[direction.removeprefix("saved: ")])
        site = vector.site
    else:
        vector = concept_vector(name, zoo, site, *CONCEPTS[direction])
    from analyses.steering import generate

    # The handle is shared by every session of this page; each generation holds its lock
    # (ModelHandle.generate, and `intervene` around a steered one), so no other session's
    # steering applies to it.
    _, plain = generate(handle, prompts, None, max_new_tokens=12)
    _, steered = generate(handle, prompts, vector, coeff, where=where, max_new_tokens=12)
    control = vector.random_control(0)
    _, random = generate(handle, prompts, control, coeff, where=where, max_new_tokens=12)
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()

decode = handle.tokenizer.decode
st.subheader(f"Generations at {site}, coefficient {coeff:g}")
show_table(
    pd.DataFrame(
        {
            "prompt": prompts,
            "unsteered": [decode(t, skip_special_tokens=True) for t in plain],
            "steered": [decode(t, skip_special_tokens=True) for t in steered],
            "random direction, same norm": [decode(t, skip_special_tokens=True) for t in random],
        }
    ),
    f"{name} steering generations {direction} at {site} coeff {coeff:g}",
    hide_index=True,
)
st.caption(f"Vector: {vector.method}, norm {vector.norm:.3g}; {vector.provenance.get('read', '')}")

st.subheader("Sweep: sites x coefficients")
sweeps = [r for r in list_results(root) if r["analysis"] == "steering-sweep"]
if not sweeps:
    st.info(
        "No saved sweep under the runs directory. `workbench demo` saves one for toy-lm's "
        "positive-sentiment direction; `workbench steer sweep ... --out DIR` saves yours."
    )
    st.stop()
picked = st.selectbox("Saved sweep", [r["path"] for r in sweeps])
target = inside_runs(picked)
if target is None:
    st.error("that result lies outside the runs directory")
    st.stop()
result = Result.load(target)
metric = result.params.get("metric", "target_minus_opposite")
frame = result.frame[result.frame.metric == metric]
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
fig.update_xaxes(type="category")
show_figure(fig, f"{picked} {metric} sweep heatmap")
curves = frame.groupby(["site", "direction", "coeff"], as_index=False).value.mean()
fig = px.line(
    curves, x="coeff", y="value", color="site", line_dash="direction", markers=True,
    labels={"value": metric, "coeff": "coefficient"},
    title="Dose-response: concept direction (solid) vs random directions of the same norm (dashed)",
)  # fmt: skip
show_figure(fig, f"{picked} {metric} dose-response")
collateral = result.frame[result.frame.metric == "kl"]
if not collateral.empty:
    kl = (
        collateral[collateral.direction == "concept"]
        .groupby(["site", "coeff"], as_index=False)
        .value.mean()
    )
    fig = px.line(
        kl, x="coeff", y="value", color="site", markers=True,
        labels={"value": "KL from unsteered (nats)", "coeff": "coefficient"},
        title="Collateral: KL from the unsteered next-token distribution on neutral text",
    )  # fmt: skip
    show_figure(fig, f"{picked} collateral KL")
