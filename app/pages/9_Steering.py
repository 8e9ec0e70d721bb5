"""Steering playground: pick a concept direction (or a saved vector), a site and a coefficient;
steered and unsteered generations side by side; the sweep heatmap (sites x coefficients) with
its random-direction control, from saved sweeps in the runs directory or computed here.

Directions are extracted on the fly from grammar-lm (diff-in-means, cached) for the zoo's
toy-lm, read from `*.safetensors` vectors saved under the runs directory by
`workbench steer extract`, or taken from a saved SAE (a latent's decoder row) or codebook model
(a code's vector) under the runs directory (`analyses.steering.dictionaries`: unit norm, so the
page scales them to the site's typical activation norm on the prompts, like `steer sweep`'s
`--scale auto`; a dictionary of another width or site is refused, naming both). View state
lives in the URL.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from workbench.analysis.results import Result, list_results
from workbench.errors import WorkbenchError
from workbench.sites.names import expand_sites
from workbench.zoo import list_zoo, zoo_root
from workbench_app.lib import state, steering_view
from workbench_app.lib.exports import show_figure, show_table
from workbench_app.lib.pickers import inside_or_stop, require, stop_if_empty
from workbench_app.services.runsdir import runs_root, saved_vectors

PAGE = "steering"
st.set_page_config(page_title="Workbench: steering", layout="wide")
root = runs_root()


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
    return extract.mean_difference(load(name, zoo), positive, others, site)  # default read


@st.cache_resource(show_spinner="reading the dictionary...")
def dictionary_vector(
    name: str, zoo: str, kind: str, path: str, index: int, site: str | None, mtime: float
):
    from analyses.steering import dictionaries

    source = dictionaries.from_sae if kind == "sae" else dictionaries.from_codebook
    return source(path, index, site, load(name, zoo))


@st.cache_data(show_spinner=False)
def codebook_sites(folder: str, mtime: float) -> list[str]:
    """The sites of the codebook model in `folder` (read once per version of its files)."""
    from analyses.codebook.model import Codebooks

    return Codebooks.load(folder).sites


st.title("Steering")
zoo = str(zoo_root())
built = [r["name"] for r in list_zoo() if r["built"] and r["name"] == "toy-lm"]
stop_if_empty(root, stop=not built)  # the demo builds toy-lm too; with it, steer live
models = require(
    built,
    "Build the zoo's toy-lm first: `workbench zoo build toy-lm` (or `workbench demo`).",
)
name = models[0]
handle = load(name, zoo)
sites = expand_sites(handle.sites(), "blocks.*.hook_resid_pre")

vectors = saved_vectors(root)
saes, codebooks = steering_view.saved_dictionaries(root, model=name)
left, right = st.columns(2)
direction = state.url_selectbox(
    "Direction",
    steering_view.directions(vectors, saes, codebooks),
    "direction",
    page=PAGE,
    container=left,
    help="a grammar-lm concept (diff-in-means), a saved vector, an SAE latent (its decoder "
    "row) or a codebook code (its codebook vector)",
)
dictionary = steering_view.dictionary_source(direction)
index = 0
if dictionary is not None:
    index = state.url_number_input(
        "SAE latent" if dictionary[0] == "sae" else "Codebook code",
        "index",
        page=PAGE,
        default=0,
        min_value=0,
        container=left,
    )
site = sites[0]
if dictionary is None:  # a dictionary's latent or code lives at the dictionary's own site
    site = state.url_selectbox(
        "Site",
        sites,
        "site",
        page=PAGE,
        default=lambda wanted: sites[min(2, len(sites) - 1)] if wanted is None else sites[0],
        container=left,
    )
coeff = state.url_slider(
    "Coefficient",
    "coeff",
    page=PAGE,
    min_value=-12.0,
    max_value=12.0,
    default=6.0,
    step=0.5,
    container=right,
)
where = state.url_radio(
    "Where",
    ["after", "all"],
    "where",
    page=PAGE,
    container=right,
    horizontal=True,
    help="after: generated tokens",
)
prompts_text = state.url_text_area(
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

scale = None
try:
    if dictionary is not None:
        from analyses.steering.extract import typical_norm

        folder = inside_or_stop(dictionary[1], root, "folder")
        mtime = max(p.stat().st_mtime for p in Path(folder).iterdir())
        books_site = None
        if dictionary[0] == "codebook":
            books_sites = codebook_sites(str(folder), mtime)
            books_site = state.url_selectbox(
                "Codebook site", books_sites, "book_site", page=PAGE, container=left
            )
        vector = dictionary_vector(name, zoo, dictionary[0], str(folder), index, books_site, mtime)
        site = vector.site
        scale = typical_norm(handle, prompts, site)
    elif direction.startswith(steering_view.SAVED):
        from analyses.steering import SteeringVector

        vector = SteeringVector.load(vectors[direction.removeprefix(steering_view.SAVED)])
        site = vector.site
    else:
        vector = concept_vector(name, zoo, site, *steering_view.CONCEPTS[direction])
    from analyses.steering import generate

    # The handle is shared by every session of this page; each generation holds its lock
    # (ModelHandle.generate, and `intervene` around a steered one), so no other session's
    # steering applies to it.
    _, plain = generate(handle, prompts, None, max_new_tokens=12)
    options = {"where": where, "scale": scale, "max_new_tokens": 12}
    _, steered = generate(handle, prompts, vector, coeff, **options)
    control = vector.random_control(0)
    _, random = generate(handle, prompts, control, coeff, **options)
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()

st.subheader(f"Generations at {site}, coefficient {coeff:g}")
show_table(
    steering_view.generations_table(prompts, handle.tokenizer.decode, plain, steered, random),
    f"{name} steering generations {direction} at {site} coeff {coeff:g}",
    hide_index=True,
)
read = vector.provenance.get("read")
st.caption(f"Vector: {vector.method}, norm {vector.norm:.3g}" + (f"; read {read}" if read else ""))
if scale is not None:
    st.caption(
        f"{'SAE latent' if vector.method == 'sae' else 'Codebook code'} {index} at {site}: a unit "
        f"direction; the coefficient counts in the site's typical activation norm on these "
        f"prompts ({scale:.3g}), and the random direction gets the same."
    )

st.subheader("Sweep: sites x coefficients")
sweeps = require(
    [r for r in list_results(root) if r["analysis"] == "steering-sweep"],
    "No saved sweep under the runs directory. `workbench demo` saves one for toy-lm's "
    "positive-sentiment direction; `workbench steer sweep ... --out DIR` saves yours.",
)
picked = st.selectbox("Saved sweep", [r["path"] for r in sweeps])
result = Result.load(inside_or_stop(picked, root, "result"))
verdict = steering_view.sweep_verdict(result)
(st.success if verdict.site else st.warning)(verdict.sentence)
swept = steering_view.sweep_sources(result.params)
if swept:
    st.caption(swept)
frame, metric = steering_view.sweep_frame(result.frame, result.params)
show_figure(steering_view.sweep_heatmap(frame, metric), f"{picked} {metric} sweep heatmap")
show_figure(steering_view.dose_response_figure(frame, metric), f"{picked} {metric} dose-response")
collateral = steering_view.collateral_figure(result.frame)
if collateral is not None:
    show_figure(collateral, f"{picked} collateral KL")
