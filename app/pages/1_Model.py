"""Model page: run a prompt through a chosen model; per-layer residual norms and the logit lens.

Models are cached with `st.cache_resource` (one handle shared by every session; `capture` takes
the handle's lock). Only built zoo models are offered: nothing trains inside a page rerun.
View state (model, prompt) lives in the URL; without a model there, the model of the richest
store in the runs directory (the one the other pages open on).
"""

from __future__ import annotations

import streamlit as st

from analyses.logit_lens.api import is_causal_lm, layer_norms, logit_lens
from workbench.data import load_dataset
from workbench.errors import WorkbenchError
from workbench.zoo import get_recipe, list_zoo, zoo_root
from workbench_app.lib import model_view
from workbench_app.lib.exports import show_figure
from workbench_app.lib.pickers import require, richest_model, stop_if_empty
from workbench_app.lib.state import url_selectbox, url_text_input
from workbench_app.services.runsdir import runs_root

PAGE = "model"
st.set_page_config(page_title="Workbench: model", layout="wide")


@st.cache_resource(show_spinner="loading model...")
def load(name: str, root: str):
    """The handle of a language model: `minilm` or a built zoo LM's last checkpoint."""
    from workbench import load_model
    from workbench.zoo import load_series

    if name == "minilm":
        return load_model("minilm", device="auto")
    series = load_series(name, root)
    return series.load(series.steps[-1], device="auto")


@st.cache_data(show_spinner=False)
def default_prompt(name: str) -> str:
    dataset = "text" if name == "minilm" else get_recipe(name).dataset
    return load_dataset(dataset, 1, seed=1)[0].text


st.title("Model")
root = str(zoo_root())
choices = [r["name"] for r in list_zoo() if r["built"] and r["kind"] in ("causal-lm", "pretrained")]
runs = runs_root()
stop_if_empty(runs, stop=not choices)  # the page runs zoo models, not the runs dir
require(choices, "No language model is built yet: `workbench zoo build toy-lm` builds one.")
name = url_selectbox(
    "Model", choices, "model", page=PAGE, default=lambda _url: richest_model(runs, choices)
)
prompt = url_text_input("Prompt", "prompt", page=PAGE, default=lambda _url: default_prompt(name))
if not prompt.strip():
    st.info("Type a prompt.")
    st.stop()

handle = load(name, root)
try:
    norms = layer_norms(handle, prompt)
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()

st.subheader("Residual-stream norm after each block")
labels = model_view.position_labels(norms)
show_figure(model_view.norms_figure(norms, labels), f"{name} residual norm per block")

st.subheader("Logit lens")
if not is_causal_lm(handle):
    st.info(
        f"{name} is not a causal language model (it has no next-token head); the logit lens "
        "applies to causal LMs such as the zoo's toy-lm."
    )
    st.stop()
show_figure(model_view.lens_figure(logit_lens(handle, prompt), labels), f"{name} logit lens")
st.caption(
    "Cell text: the lens's most likely next token at that depth; colour: the probability "
    "it gives the token that actually comes next."
)
