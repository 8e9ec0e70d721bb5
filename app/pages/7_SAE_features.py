"""SAE feature page: pick a feature report under the runs directory (written by `workbench sae
features --out RUNS/...`), then a latent: its density, activation histogram, top and
quantile-sampled contexts with per-token shading, output tokens, and agreement with the
store's labels. The caption names the SAE's architecture and sparsity settings; a JumpReLU
SAE also shows the latent's learned threshold and a histogram of all thresholds. The SAE's
training log (if beside it) is drawn as a curve. Every chart and table
has download buttons (HTML; CSV, parquet; PNG from the chart's toolbar), and the latent can be
saved as a static HTML page (`analyses.sae.feature_page`, as `workbench sae feature-page`).

Thin: reads through `analyses.sae`; heavy work (training, the feature pass) is done by the CLI
beforehand. View state (report, latent) lives in the URL.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

from analyses.sae import load_sae, read_log
from analyses.sae.feature_page import feature_page
from analyses.sae.features import latent_report, load_feature_stats, store_unembedding
from workbench.store import ActivationStore
from workbench_app.lib import exports, sae_view
from workbench_app.lib.links import page_link
from workbench_app.lib.pickers import inside_or_stop, require, stop_if_empty
from workbench_app.lib.state import url_number_input, url_selectbox
from workbench_app.services.runsdir import inside_runs, runs_root

st.set_page_config(page_title="Workbench: SAE features", layout="wide")
root = runs_root()
PAGE = "sae"  # namespaces its widgets' session state (shared by every page of the app)
st.title("SAE features")
stop_if_empty(root)


def _relative(path: str) -> Path | None:
    """`path` if it lies inside the runs directory, else None (the app reads nothing else)."""
    try:
        return inside_runs(str(Path(path).resolve().relative_to(root)), root)
    except ValueError:
        return None


def _mtime(report_dir: str) -> float:
    return (Path(report_dir) / "features.json").stat().st_mtime


@st.cache_data(show_spinner=False)
def reports(root_dir: str) -> list[str]:
    return sorted(
        str(p.parent.relative_to(root_dir)) for p in Path(root_dir).glob("**/features.json")
    )


@st.cache_resource(show_spinner="loading the SAE...")
def sae_at(path: str):
    return load_sae(path)


@st.cache_resource(show_spinner="loading the unembedding...")
def unembedding(store_path: str):
    return store_unembedding(ActivationStore(store_path))


@st.cache_resource(show_spinner="reading the feature report...")
def feature_stats_at(report_dir: str, mtime: float):
    """(stats, meta) of a feature report, read once per version of its `features.json`."""
    return load_feature_stats(report_dir)


@st.cache_data(show_spinner="reading the latent...")
def report_for(report_dir: str, sae_path: str, store_path: str, site: str, latent: int) -> dict:
    sae, _ = sae_at(sae_path)
    store = ActivationStore(store_path)
    stats, _ = feature_stats_at(report_dir, _mtime(report_dir))
    return latent_report(sae, store, site, latent, stats, w_u=unembedding(store_path))


found = require(
    reports(str(root)),
    f"No SAE feature reports under `{root}`. Train and describe one, e.g. `workbench sae "
    f"train --store {root}/stores/toy-lm --site blocks.3.hook_resid_post --d-sae 512 --k 16 "
    f"--out {root}/sae/toy` then `workbench sae features --sae {root}/sae/toy --store "
    f"{root}/stores/toy-lm --out {root}/sae/toy/features`.",
)
choice = url_selectbox("Feature report", found, "features", page=PAGE)
directory = inside_or_stop(choice, root, "report")
stats, meta = feature_stats_at(str(directory), _mtime(str(directory)))
sae_dir, store_dir = _relative(meta["sae"]), _relative(meta["store"])
if sae_dir is None or store_dir is None:
    st.error(
        "This report names an SAE or a store outside the runs directory; the app reads only "
        "inside it."
    )
    st.stop()
site = meta["site"]
sae, _ = sae_at(str(sae_dir))
st.caption(
    f"SAE `{sae_dir.relative_to(root)}` ({sae_view.architecture_line(sae)}) on "
    f"`{store_dir.relative_to(root)}`, site `{site}`, {stats.n_rows} rows"
)
st.markdown(f"[Prompt view]({page_link('Prompt', kind='SAE', sae=str(sae_dir.relative_to(root)))}): which of this SAE's latents fire on the tokens of a prompt you type")  # fmt: skip

left, right = st.columns(2)
exports.show_figure(sae_view.density_figure(stats), "feature density", container=left)
training = sae_view.training_figure(read_log(sae_dir))
if training is not None:
    exports.show_figure(training, "training progress", container=right)

best = pd.DataFrame(stats.best_latents())
if not best.empty:
    st.subheader("Best-matching latent per label value (F1)")
    exports.show_table(best, "best latent per label", hide_index=True)
    if stats.label_levels:  # which level each label was read at (`sae features --label-level`)
        st.caption(
            "Label levels: "
            + ", ".join(f"{name} per {level}" for name, level in stats.label_levels.items())
            + "."
        )
latent = url_number_input(
    "Latent",
    "latent",
    page=PAGE,
    default=sae_view.first_latent(stats, best),
    min_value=0,
    max_value=len(stats.density) - 1,
)

report = report_for(str(directory), str(sae_dir), str(store_dir), site, latent)
st.subheader(f"Latent {latent}")
exports.download_html(
    "Feature as HTML page",
    partial(
        feature_page,
        report,
        sae=str(sae_dir.relative_to(root)),
        store=str(store_dir.relative_to(root)),
        site=site,
    ),
    f"{sae_dir.name} latent {latent}",
)
thresholds = sae_view.thresholds(sae)
columns = st.columns(3 if thresholds is None else 4)
columns[0].metric("density", f"{report['density']:.3%}")
columns[1].metric("max activation", f"{report['max_act']:.3f}")
columns[2].metric("mean when active", f"{report['mean_act']:.3f}")
if thresholds is not None:  # JumpReLU: the latent is h where h > its threshold, else 0
    columns[3].metric("threshold", f"{thresholds[latent]:.3f}")
left, right = st.columns(2)
exports.show_figure(
    sae_view.histogram_figure(report), f"latent {latent} activation histogram", container=left
)
agreement = sae_view.agreement_figure(report)
if agreement is not None:
    exports.show_figure(agreement, f"latent {latent} label agreement", container=right)
threshold_chart = sae_view.threshold_figure(sae, latent)
if threshold_chart is not None:
    exports.show_figure(threshold_chart, "JumpReLU thresholds", container=left)

scale = report["max_act"] or 1.0
st.subheader("Top activations")
for ctx in report["top_contexts"]:
    st.html(sae_view.context_html(ctx, scale))
st.subheader("Quantile samples")
for low, high, contexts in report["quantile_contexts"]:
    st.caption(f"activation {low:.3f} to {high:.3f}")
    for ctx in contexts:
        st.html(sae_view.context_html(ctx, scale))
if report.get("output_tokens"):
    st.subheader("Output tokens (W_dec @ W_U)")
    top, bottom = st.columns(2)
    for side, column in (("top", top), ("bottom", bottom)):
        exports.show_table(
            pd.DataFrame(report["output_tokens"][side], columns=[f"{side} token", "logit"]),
            f"latent {latent} {side} output tokens",
            container=column,
            hide_index=True,
        )
