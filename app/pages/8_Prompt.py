"""Prompt page: type a prompt (or pick a dataset example), pick an SAE or a codebook model under
the runs directory, and see which latents or codes fire on which token: the tokens coloured by
their strongest unit, the prompt's top units (activation per token, best-matching label,
a link to each unit's page), and one token's units with the logits they push up and down.

The same view as `workbench sae prompt` and `workbench codebook prompt` (`analyses.sae.prompt`,
`analyses.codebook.prompt`). Models, SAEs and codebook models are cached with
`st.cache_resource`; a bad choice (a site the SAE was not trained on, an empty prompt) is an
error on the page, the pickers above it stay. View state lives in the URL.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from analyses.codebook.prompt import prompt_view as read_codes
from analyses.codebook.prompt import token_logits as code_logits
from analyses.sae.prompt import (
    default_dataset,
    default_model,
    default_report,
    sae_origin,
    token_logits,
)
from analyses.sae.prompt import prompt_view as read_prompt
from workbench.analysis.prompt import dataset_example, default_token
from workbench.errors import WorkbenchError
from workbench.zoo import list_zoo
from workbench_app.lib import exports, prompt_view, state
from workbench_app.lib.pickers import inside_or_stop, require, stop_if_empty
from workbench_app.services.runsdir import inside_runs, runs_root

st.set_page_config(page_title="Workbench: prompt", layout="wide")
PAGE = "prompt"  # namespaces its widgets' session state (shared by every page of the app)
KINDS = ("SAE", "Codebook")


@st.cache_resource(show_spinner="loading the model...")
def model_at(spec: str):
    from analyses.codebook.model import load_base_model

    return load_base_model(spec)


@st.cache_resource(show_spinner="loading the SAE...")
def sae_at(path: str, mtime: float):
    from analyses.sae import load_sae

    return load_sae(path)


@st.cache_resource(show_spinner="reading the feature report...")
def stats_at(report: str, mtime: float):
    from analyses.sae.features import load_feature_stats

    return load_feature_stats(report)


@st.cache_resource(show_spinner="loading the codebook model and its reference codes...")
def codebook_at(folder: str, mtime: float):
    """(handle, books, reference codes) of the codebook model in `folder`."""
    from analyses.codebook.analysis import reference_codes
    from analyses.codebook.model import load_codebook_model

    handle, books = load_codebook_model(folder)
    return handle, books, reference_codes(handle, books, n_examples=200)


@st.cache_data(show_spinner=False, ttl=60)
def report_for(sae_dir: str, root_dir: str) -> Path | None:
    """A feature report under the runs directory made for the SAE in `sae_dir` (its
    `features.json` names it), when there is none beside it."""
    import json

    for path in sorted(Path(root_dir).rglob("features.json")):
        try:
            made_for = json.loads(path.read_text())["meta"]["sae"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if Path(made_for).resolve() == Path(sae_dir).resolve():
            return path.parent
    return None


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _rel(path: Path) -> str:
    return str(path.relative_to(root))


def _inside(path: str | None) -> Path | None:
    """`path` if it lies inside the runs directory, else None."""
    if not path:
        return None
    try:
        return inside_runs(str(Path(path).resolve().relative_to(root.resolve())), root)
    except (ValueError, WorkbenchError):
        return None


def _fail(exc: Exception) -> None:
    st.error(str(exc))
    st.stop()


st.title("Prompt")
st.caption(
    "Which latents or codes fire on which token of a prompt, what they mean (their best-matching "
    "label on the data they were read on) and what they do (the logits each pushes up and down)."
)
root = runs_root()
stop_if_empty(root)
saes = sorted(
    _rel(p.parent) for p in root.rglob("sae.safetensors") if p.with_name("config.json").is_file()
)
books_found = sorted(_rel(p.parent) for p in root.rglob("codebook.json"))
kinds = [k for k, found in zip(KINDS, (saes, books_found), strict=True) if found]
require(
    kinds,
    f"No SAE or codebook model under `{root}`: train one, e.g. `workbench sae train --store "
    f"{root}/stores/toy-lm --site blocks.1.hook_resid_post --out {root}/sae/toy-lm` (then "
    f"`workbench sae features ... --out {root}/sae/toy-lm/features` for labels), or "
    f"`workbench codebook train --model toy-lm --out {root}/codebooks/toy-lm`.",
)
left, middle, right = st.columns(3)
kind = state.url_radio("Read with", kinds, "kind", page=PAGE, container=left, horizontal=True)

if kind == "SAE":
    choice = state.url_selectbox("SAE", saes, "sae", page=PAGE, container=left)
    sae_dir = inside_or_stop(choice, root, "SAE")
    try:
        sae, meta = sae_at(str(sae_dir), _mtime(sae_dir / "config.json"))
    except WorkbenchError as exc:
        _fail(exc)
    origin = sae_origin(meta)
    store_dir = _inside(origin["store"])  # the app reads only inside the runs directory
    own = default_model({**origin, "store": str(store_dir) if store_dir else None})
    zoo_lms = [r["name"] for r in list_zoo() if r["built"] and r["kind"] == "causal-lm"]
    models = list(dict.fromkeys([m for m in (own, *zoo_lms) if m]))
    if not models:
        st.error(f"the SAE in `{choice}` records no model, and no zoo LM is built")
        st.stop()
    spec = state.url_selectbox("Model", models, "model", page=PAGE, container=middle)
    try:
        handle = model_at(spec)
    except WorkbenchError as exc:
        _fail(exc)
    sites = handle.sites()
    site = state.url_selectbox(
        "Site", sites, "site", page=PAGE, container=right,
        default=origin["site"] if origin["site"] in sites else None,
    )  # fmt: skip
    report = default_report(sae_dir) or report_for(str(sae_dir), str(root))
    stats = stats_at(str(report), _mtime(report / "features.json"))[0] if report else None
    # the examples to pick from: the SAE's store's (inside the runs dir), else its zoo model's
    dataset = default_dataset({**origin, "store": str(store_dir) if store_dir else None})
    where = f"SAE `{choice}` ({sae.d_sae} latents, trained on `{origin['model']}` at "
    st.caption(
        where + f"`{origin['site']}`); feature report: `{_rel(report) if report else 'none'}`"
    )
else:
    choice = state.url_selectbox(
        "Codebook model", books_found, "codebook", page=PAGE, container=left
    )
    folder = inside_or_stop(choice, root, "folder")
    try:
        handle, books, reference = codebook_at(str(folder), _mtime(folder / "codebook.json"))
    except WorkbenchError as exc:
        _fail(exc)
    site = state.url_selectbox("Site", books.sites, "site", page=PAGE, container=right)
    dataset = books.report.get("dataset")
    middle.caption(f"model: `{books.base}` with {books.n_codes} codes per site, k={books.k}")

sources = ["typed text", "dataset example"] if dataset else ["typed text"]
source = state.url_radio("Prompt", sources, "source", page=PAGE, horizontal=True)
if source == "dataset example" and dataset:
    index = state.url_number_input(
        f"Example of {dataset}", "example", page=PAGE, default=0, min_value=0, max_value=199
    )
    example = dataset_example(dataset, index)
    text = example.text
    st.caption(f"example {index}: {text!r} (labels {example.labels})")
else:
    text = state.url_text_area(
        "Text", "text", page=PAGE,
        default=lambda _: dataset_example(str(dataset), 0).text if dataset else "",
    )  # fmt: skip

try:
    if kind == "SAE":
        view = read_prompt(
            handle, sae, text, site, trained_site=origin["site"], stats=stats,
            report=_rel(report) if report else None,
        )  # fmt: skip
    else:
        view = read_codes(handle, books, text, site, reference=reference, folder=choice)
except WorkbenchError as exc:
    _fail(exc)

if view.tokens.note:
    st.warning(view.tokens.note)
for note in view.notes:
    st.info(note)
units = view.top_units(10)
tokens = list(range(len(view.tokens.tokens)))
token = state.url_selectbox(
    "Token", tokens, "token", page=PAGE, default=default_token(view),
    format_func=lambda i: prompt_view.token_label(view, i),
    refuse=lambda bad: f"token {bad} is out of range: the prompt has {len(tokens)} tokens "
    f"[0, {len(tokens)}); showing token {default_token(view)}",
)  # fmt: skip
st.subheader("Tokens, coloured by their strongest " + view.unit)
st.html(prompt_view.tokens_html(view, units, token))
st.html(prompt_view.legend_html(view, units))

st.subheader(f"Top {view.unit}s of the prompt")
st.caption(prompt_view.ranking_note(view))
frame = prompt_view.units_frame(view, units)
if frame.empty:
    st.info(f"no {view.unit} fires on this prompt")
else:
    exports.show_table(
        frame, f"top {view.unit}s of the prompt", hide_index=True,
        column_config={"page": st.column_config.LinkColumn("page", display_text=r"open")},
    )  # fmt: skip

st.subheader(f"Token {prompt_view.token_label(view, token)}: its {view.unit}s and their logits")
try:
    if kind == "SAE":
        detail = token_logits(view, sae, handle, token)
    else:
        detail = code_logits(view, books, handle, site, token)
except WorkbenchError as exc:
    _fail(exc)
if detail.get("no_logits"):
    st.info(detail["no_logits"])
exports.show_table(
    prompt_view.detail_frame(detail, view), f"{view.unit}s of token {token}", hide_index=True
)
