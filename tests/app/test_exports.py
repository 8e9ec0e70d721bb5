"""Export buttons in the app: `show_figure` / `show_table` (AppTest of a small script: what they
return, the chart's PNG file name, the buttons and their keys), the SAE features and Codebooks
pages offering every chart's and table's downloads and the one-feature / one-code HTML page, and
in Chromium the real downloads (made on click, lazily)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from app_browser import needs_chromium, rendered_page
from app_stores import HOME
from streamlit.testing.v1 import AppTest

from analyses.sae import create_sae, save_sae
from workbench.cli.main import main
from workbench.store import StoreWriter

PAGES = HOME.parent / "pages"
SITE = "blocks.0.hook_resid_post"


def exporting_script() -> None:
    import pandas as pd
    import plotly.express as px
    import streamlit as st

    from workbench.app_export import show_figure, show_table

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 1.0, 3.0]})
    event = show_figure(
        px.scatter(frame, x="x", y="y"), "feature density", key="map", on_select="rerun"
    )
    st.session_state["event"] = event
    left, _ = st.columns(2)
    st.session_state["table"] = show_table(frame, "best latent per label", container=left)
    show_table(frame.set_index("x"), "static table", static=True)


def test_show_figure_and_show_table_apptest() -> None:
    at = AppTest.from_function(exporting_script).run()
    assert not at.exception, [e.value for e in at.exception]
    # show_figure returns st.plotly_chart's selection state (on_select), the PNG named by `name`
    assert at.session_state["event"]["selection"]["points"] == []
    config = json.loads(at.get("plotly_chart")[0].proto.config)
    assert config["toImageButtonOptions"] == {
        "format": "png",
        "filename": "feature_density",
        "scale": 2,
    }
    buttons = {b.key: b.label for b in at.get("download_button")}
    assert buttons == {
        "export-map-html": "HTML",  # the chart's key names its button
        "export-best_latent_per_label-csv": "CSV",
        "export-best_latent_per_label-parquet": "Parquet",
        "export-static_table-csv": "CSV",
        "export-static_table-parquet": "Parquet",
    }
    assert len(at.dataframe) == 1 and len(at.table) == 1


def labelled_store_with_sae(runs: Path) -> None:
    """A store with a `tag` label (x_0 > 0.5), an identity SAE (latent j = relu(x_j)) and its
    feature report at runs/sae/identity/features."""
    rng = np.random.default_rng(0)
    n, d, seq = 480, 8, 8
    x = rng.standard_normal((n, d)).astype(np.float32)
    store = runs / "stores" / "toy"
    writer = StoreWriter(store, {"model": "toy", "dataset": "toy", "sites": [SITE]})
    writer.append(
        {SITE: x},
        np.arange(n) % 40,
        np.arange(n) // seq,
        np.arange(n) % seq,
        row_labels={"tag": (x[:, 0] > 0.5).astype(np.int64)},
    )
    writer.finalize()
    sae = create_sae("relu", d_in=d, d_sae=2 * d)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    folder = save_sae(sae, runs / "sae" / "identity", {"site": SITE})
    args = ["sae", "features", "--sae", str(folder), "--store", str(store), "--html", "none"]
    assert main([*args, "--out", str(folder / "features")]) == 0


def labels_of(at: AppTest) -> list[str]:
    return [b.label for b in at.get("download_button")]


def test_sae_page_offers_exports(runs_dir) -> None:
    labelled_store_with_sae(runs_dir)
    at = AppTest.from_file(str(PAGES / "7_SAE_features.py"), default_timeout=60)
    at.query_params["latent"] = "0"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = labels_of(at)
    # density, histogram and label agreement (no training log beside this SAE)
    assert labels.count("HTML") == len(at.get("plotly_chart")) == 3
    # best latent per label; output tokens need a model, this store has none
    assert labels.count("CSV") == labels.count("Parquet") == len(at.dataframe) == 1
    assert labels.count("Feature as HTML page") == 1
    keys = {b.key for b in at.get("download_button")}
    assert "export-identity_latent_0-page" in keys
    assert "export-latent_0_activation_histogram-html" in keys


@pytest.fixture(scope="module")
def codebook_runs(tmp_path_factory) -> Path:
    from analyses.codebook.train import TrainConfig, train_codebook_model

    runs = tmp_path_factory.mktemp("runs")
    train_codebook_model(
        "fsm-lm", "blocks.*.hook_resid_post", n_codes=64, k=1,
        cfg=TrainConfig(steps=10, trainable="codebooks"), n_train=50, n_eval=10,
        out=runs / "codebooks" / "fsm-lm",
    )  # fmt: skip
    return runs


@pytest.mark.slow
def test_codebook_page_offers_exports(codebook_runs, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(codebook_runs))
    at = AppTest.from_file(str(PAGES / "10_Codebooks.py"), default_timeout=120)
    at.query_params["site"] = "blocks.1.hook_resid_post"
    at.query_params["code"] = "5"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = labels_of(at)
    assert labels.count("HTML") == len(at.get("plotly_chart")) == 2  # usage, purity
    # metrics, statistics, steering (static) and top contexts
    assert labels.count("CSV") == labels.count("Parquet") == 4
    assert len(at.table) == 3 and len(at.dataframe) == 1
    assert labels.count("Code as HTML page") == 1
    assert "export-fsm-lm_blocks.1.hook_resid_post_code_5-page" in {
        b.key for b in at.get("download_button")
    }


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_downloads_in_chromium(tmp_path) -> None:
    """The buttons download, in a real browser, files made on click: the feature page and a
    chart's offline HTML; the chart's toolbar PNG carries the chart's file name."""
    runs = tmp_path / "runs"
    labelled_store_with_sae(runs)
    with rendered_page(runs, "SAE_features?latent=0", 3, "page-exports.png", tmp_path) as (
        page,
        _text,
    ):
        names = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')]"
            ".map(gd => gd._context.toImageButtonOptions.filename)"
        )
        assert "feature_density" in names and "latent_0_activation_histogram" in names

        def download(label: str) -> tuple[str, str]:
            with page.expect_download(timeout=60_000) as info:
                page.get_by_role("button", name=label, exact=True).first.click()
            got = info.value
            return got.suggested_filename, Path(got.path()).read_text(encoding="utf-8")

        name, feature = download("Feature as HTML page")
        assert name == "identity_latent_0.html"
        assert "<h1>Latent 0</h1>" in feature and "tag=1" in feature
        assert "<script" not in feature
        name, chart = download("HTML")
        assert name == "feature_density.html"
        assert "<title>feature density</title>" in chart and "plotly.js v" in chart
        assert not re.search(r"<script[^>]*\bsrc\s*=", chart)
