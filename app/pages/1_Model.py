"""Model page: run a prompt through a chosen model; per-layer residual norms and the logit lens.

Models are cached with `st.cache_resource` (one handle shared by every session; `capture` takes
the handle's lock). Only built zoo models are offered: nothing trains inside a page rerun.
View state (model, prompt) lives in the URL.
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from analyses.logit_lens import is_causal_lm, layer_norms, logit_lens
from workbench.app_export import show_figure
from workbench.app_state import url_selectbox, url_text_input
from workbench.data import load_dataset
from workbench.errors import WorkbenchError
from workbench.zoo import get_recipe, list_zoo, zoo_root

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
name = url_selectbox("Model", choices, "model", page=PAGE)
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
labels = [
    f"{p}:{t}" for p, t in norms[norms["layer"] == 0][["position", "token"]].itertuples(index=False)
]
grid = norms.pivot(index="layer", columns="position", values="norm")
fig = px.imshow(
    grid.values,
    x=labels,
    y=[f"block {i}" for i in grid.index],
    aspect="auto",
    color_continuous_scale="Viridis",
    labels={"color": "L2 norm"},
)
show_figure(fig, f"{name} residual norm per block")

st.subheader("Logit lens")
if not is_causal_lm(handle):
    st.info(
        f"{name} is not a causal language model (it has no next-token head); the logit lens "
        "applies to causal LMs such as the zoo's toy-lm."
    )
    st.stop()
lens = logit_lens(handle, prompt)
prob = lens.pivot(index="layer", columns="position", values="next_token_prob")
top = lens.pivot(index="layer", columns="position", values="top_token")
fig = px.imshow(
    prob.values,
    x=labels,
    y=[f"block {i}" for i in prob.index],
    aspect="auto",
    color_continuous_scale="Blues",
    zmin=0,
    zmax=1,
    labels={"color": "p(actual next token)"},
)
fig.update_traces(text=top.values, texttemplate="%{text}")
show_figure(fig, f"{name} logit lens")
st.caption(
    "Cell text: the lens's most likely next token at that depth; colour: the probability "
    "it gives the token that actually comes next."
)
