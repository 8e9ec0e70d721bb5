"""Codebooks page: browse the codes of a saved codebook model (usage by layer, top contexts,
purity against ground-truth labels) and steer the model by forcing a code.

Saved codebook models are folders with `codebook.json` under the runs directory (written by
`workbench codebook train --out runs/codebooks/NAME`); the base model comes from the zoo cache.
Models and code tables are cached with `st.cache_resource` keyed by folder and its mtime. View
state (model, site, code) lives in the URL. Every chart and table has download buttons (HTML;
CSV, parquet; PNG from the chart's toolbar), and a code can be saved as a static HTML page
(`analyses.codebook.code_page`, as `workbench codebook code-page`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from analyses.codebook.analysis import (
    code_statistics,
    code_usage,
    group_codes,
    labels_for,
    purity,
    purity_summary,
    top_contexts,
)
from analyses.codebook.code_page import code_page, code_report, default_label
from workbench.errors import WorkbenchError
from workbench_app.lib import exports, state
from workbench_app.lib.links import page_link
from workbench_app.lib.pickers import inside_or_stop, require, stop_if_empty
from workbench_app.services.runsdir import runs_root

st.set_page_config(page_title="Workbench: codebooks", layout="wide")
PAGE = "codebooks"  # namespaces its widgets' session state (shared by every page of the app)


@st.cache_resource(show_spinner="loading codebook model...")
def load(folder: str, mtime: float):
    """(handle, books, examples, ids, codes by site) of the codebook model in `folder`."""
    from analyses.codebook.analysis import reference_codes
    from analyses.codebook.model import load_codebook_model

    handle, books = load_codebook_model(folder)
    examples, ids, codes = reference_codes(handle, books, n_examples=200)
    return handle, books, examples, ids.numpy(), codes


st.title("Codebooks")
root = runs_root()
stop_if_empty(root)
folders = require(
    sorted(str(p.parent.relative_to(root)) for p in root.rglob("codebook.json")),
    f"No saved codebook model under {root}: run `workbench codebook train --out "
    f"{root}/codebooks/fsm-lm`.",
)
choice = state.url_selectbox("Codebook model", folders, "model", page=PAGE)
path = inside_or_stop(choice, root, "folder")
try:
    handle, books, examples, ids, codes = load(
        str(path), (Path(path) / "codebook.json").stat().st_mtime
    )
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()


report = books.report
groups = f" in {books.groups} groups of {books.codes_per_group}" if books.groups > 1 else ""
st.caption(f"base {books.base}, {books.n_codes} codes{groups}, k={books.k}, finetuned on "
           f"{report.get('dataset')} ({report.get('train', {}).get('trainable')} trainable)")  # fmt: skip
if report.get("with_codebooks"):
    metrics = pd.DataFrame({"without codebooks": report["without_codebooks"],
                            "with codebooks": report["with_codebooks"]})  # fmt: skip
    st.subheader("Task metric with and without codebooks (held-out examples)")
    exports.show_table(metrics.T.round(4), "task metric with and without codebooks", static=True)

st.subheader("Code statistics per layer")
stats = code_statistics(codes, books.n_codes)
exports.show_table(stats.round(4).set_index("site"), "code statistics per layer", static=True)

site = state.url_selectbox("Site", books.sites, "site", page=PAGE)
st.markdown(f"[Prompt view]({page_link('Prompt', kind='Codebook', codebook=choice, site=site)}): which codes the tokens of a prompt you type choose")  # fmt: skip
usage = code_usage(codes[site], books.n_codes)
order = usage.argsort()[::-1]
top = pd.DataFrame({"code": [str(c) for c in order[:40]], "usage": usage[order[:40]]})
usage_fig = px.bar(
    top, x="code", y="usage", title=f"Most used codes at {site} (fraction of tokens)"
)
usage_fig.update_xaxes(type="category")
exports.show_figure(usage_fig, f"most used codes at {site}", width="stretch")

label = default_label(report.get("dataset"))
labels, table = None, None
if label:
    labels = labels_for(examples, label, ids.shape[1])
    table = purity(codes[site], labels, books.n_codes)
    st.subheader(f"Purity: best code per {label} (mean precision {table.precision.mean():.3f}, "
                 f"recall {table.recall.mean():.3f})")  # fmt: skip
    fig = px.scatter(table, x="recall", y="precision", hover_data=["label", "code", "support"],
                     title=f"Best code (by F1) for each {label}")  # fmt: skip
    exports.show_figure(fig, f"best code per {label} at {site}", width="stretch")
    if books.groups > 1:
        per_group = pd.DataFrame(
            {"group": g, "codes": f"{g * books.codes_per_group}..{(g + 1) * books.codes_per_group - 1}",
             **purity_summary(purity(part, labels, books.n_codes))}
            for g, part in enumerate(group_codes(codes[site], books.k, books.groups))
        )  # fmt: skip
        st.subheader("Purity per group (each group's codes read on their own)")
        exports.show_table(per_group.round(4), f"purity per group at {site}", static=True)

code = state.url_number_input("Code", "code", page=PAGE, min_value=0, max_value=books.n_codes - 1,
                        default=lambda wanted: int(order[0]) if wanted is None else 0)  # fmt: skip
st.subheader(f"Top contexts of code {code} (usage {usage[code]:.4f})")
report_of = partial(code_report, codes[site], ids, code, handle.tokenizer, books.n_codes,
                    labels=labels, label=label, purity_table=table)  # fmt: skip
exports.download_html(
    "Code as HTML page",
    lambda: code_page(report_of(), model=choice, site=site),  # names not reassigned below
    f"{Path(choice).name} {site} code {code}",
)
exports.show_table(top_contexts(codes[site], ids, code, handle.tokenizer, n=15),
           f"top contexts of code {code} at {site}", width="stretch", hide_index=True)  # fmt: skip

st.subheader("Steer: force the code on during generation")
prompt = state.url_text_input(
    "Prompt", "prompt", page=PAGE, default=lambda _: " ".join(examples[0].text.split()[:6])
)
if prompt.strip():
    from analyses.codebook.steer import generate_with_codes

    try:
        gen = generate_with_codes(handle, books, [prompt], site, on=[code], max_new_tokens=8)
    except WorkbenchError as exc:
        st.error(str(exc))
    else:
        steered = pd.DataFrame({"prompt": [prompt], "codebooks": gen["codebooks"],
                                f"code {code} forced": gen["forced"]})  # fmt: skip
        exports.show_table(steered, f"generation with code {code} forced", static=True)
