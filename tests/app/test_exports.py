"""Export buttons in the app: `show_figure` / `show_table` (AppTest of a small script: what they
return, the chart's PNG file name, the buttons and their keys), the SAE features and Codebooks
pages offering every chart's and table's downloads and the one-feature / one-code HTML page,
every other page doing the same over one small runs dir, and in Chromium the real downloads
(made on click, lazily)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_browser import needs_chromium, rendered_page
from app_stores import HOME, SITES, make_store
from streamlit.testing.v1 import AppTest
from test_browser_massive import write_job
from test_overview import SITES as OVERVIEW_SITES
from test_overview import make_runs as overview_runs
from test_widget_state import landscape_results

from analyses.sae import identity_sae, save_sae
from workbench.analysis.results import Result
from workbench.cli.main import main
from workbench.store import StoreWriter
from workbench.zoo import ZOO_ENV
from workbench_app.services.runsdir import RUNS_ENV

PAGES = HOME.parent / "pages"
SITE = "blocks.0.hook_resid_post"


def exporting_script() -> None:
    import pandas as pd
    import plotly.express as px
    import streamlit as st

    from workbench_app.lib.exports import show_figure, show_table

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
    sae = identity_sae(d)
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


def collapse_results(runs: Path) -> None:
    """A neural-collapse series and a probe result, both over two checkpoints (made-up numbers)."""
    nc = [
        {"checkpoint_step": step, "site": site, "metric": metric, "value": 1.0 / (1 + step + i)}
        for step in (1, 2, 4)
        for i, site in enumerate(SITES)
        for metric in ("nc1", "nc2_equinorm", "nc3", "nc4")
    ]
    Result("neural-collapse", pd.DataFrame(nc)).save(runs / "results" / "neural-collapse" / "nc")
    probe = [
        {"checkpoint_step": step, "site": site, "label": "kind", "metric": metric, "value": value}
        for step in (10, 100)
        for i, site in enumerate(SITES)
        for metric, value in (
            ("accuracy", 0.5 + 0.1 * i),
            ("control_accuracy", 0.4),
            ("majority_baseline", 0.3),
        )
    ]
    Result("probe", pd.DataFrame(probe)).save(runs / "results" / "probe" / "kind")


def batch_results(runs: Path) -> None:
    """A batch over three steps of two scalar metrics (the scrubber, its other metric), with a
    failed cell."""
    folder = runs / "sweeps" / "toy"
    cell = {"key": "c-fail", "entry": "stats", "analysis": "stats", "model": "toy", "step": 100,
            "dataset": "text", "site": SITES[0], "site_b": None}  # fmt: skip
    (folder / "cells" / "c-fail").mkdir(parents=True)
    (folder / "cells" / "c-fail" / "error.json").write_text(json.dumps({"error": "boom"}))
    (folder / "plan.json").write_text(json.dumps({"name": "toy-batch", "cells": [cell]}))
    rows = [
        {"cell": f"c{step}-{i}", "entry": "stats", "analysis": "stats", "model": "toy",
         "step": step, "dataset": "text", "site": site, "metric": metric,
         "value": float(i + j + step / 100)}
        for step in (0, 10, 100)
        for i, site in enumerate(SITES)
        for j, metric in enumerate(("mean", "rms"))
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(folder / "results.parquet")


def steering_sweep(runs: Path) -> None:
    """A saved steering sweep (made-up numbers) with its collateral KL."""
    rows = [
        {"site": site, "direction": direction, "control": control, "coeff": coeff,
         "metric": metric, "value": coeff * (0.1 if direction == "concept" else 0.01)}
        for site in ("blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre")
        for direction, control in (("concept", -1), ("random", 0))
        for coeff in (-4.0, 0.0, 4.0)
        for metric in ("target_minus_opposite", "kl")
    ]  # fmt: skip
    Result("steering-sweep", pd.DataFrame(rows), params={"metric": "target_minus_opposite"}).save(
        runs / "results" / "steering-sweep" / "toy-lm" / "positive"
    )


@pytest.fixture(scope="module")
def every_page_runs(tmp_path_factory) -> Path:
    """One runs dir with something for every page: a store and a checkpoint series of the same
    rows, saved results (overview headlines, landscape, collapse, probes, steering), a massive
    tracking job and a batch."""
    runs = tmp_path_factory.mktemp("runs")
    make_store(runs, "stores/toy")
    for seed, step in ((1, 0), (2, 10), (0, 20)):  # step 20: the same activations as stores/toy
        make_store(runs, f"ckpt/toy/step{step}", seed=seed)
    overview_runs(runs)
    shutil.rmtree(runs / "results" / "steering-sweep")  # its decoy sweep: no real sweep frame
    landscape_results(runs)
    collapse_results(runs)
    steering_sweep(runs)
    write_job(runs)
    batch_results(runs)
    return runs


@dataclass
class Exported:
    page: str  # file under app/ (Home.py) or app/pages/
    charts: int  # plotly charts the page draws over `every_page_runs` with `query`
    tables: int  # dataframes and static tables
    query: dict[str, str] = field(default_factory=dict)
    zoo: bool = False  # reads the (quick-built) zoo


EXPORTED = [
    Exported("Home.py", 2, 2, {"store": "stores/toy"}),  # the zoo, per-site statistics
    Exported("0_Overview.py", 1, 1, {"store": "toy", "site": OVERVIEW_SITES[1]}),
    Exported("1_Model.py", 2, 0, {"model": "toy-lm", "prompt": "the dog ran ."}, zoo=True),
    # 3 panels (no sparsity at resid_post), values of both stores and their difference
    Exported("2_Geometry.py", 3, 3, {"store": "stores/toy", "store_b": "ckpt/toy/step20"}),
    Exported("3_Landscape.py", 2, 2),  # performance, d_int90 vs D; runs, summary
    # three maps, convergence, and a pair panel (table and spectra) under each map
    Exported(
        "4_Similarity.py",
        7,
        3,
        {
            "store": "stores/toy",
            "measure": "cca",
            "a": "stores/toy",
            "b": "ckpt/toy/step20",
            "cell": f"{SITES[0]},{SITES[2]}",
            "step_cell": f"0,{SITES[1]}",
            "pair_cell": f"{SITES[1]},{SITES[1]}",
        },
    ),
    Exported("5_Collapse_and_probes.py", 4, 1),  # NC1, NC2-4, accuracy per site, over training
    # heatmap, recurring dims, depth, trajectories, ablation; top |a|, fits, ablation, entries
    Exported("6_Massive.py", 5, 4, {"store": "stores/toy", "site": SITES[1], "job": "toy"}),
    Exported("9_Steering.py", 3, 1, {"site": "blocks.1.hook_resid_pre", "coeff": "4"}, zoo=True),
    # over training, site x step, per site at the step, other metrics; values, rows, failures
    Exported("11_Batch.py", 4, 3, {"batch": "sweeps/toy", "analysis": "stats", "metric": "mean"}),
    # both maps, the selection's makeup by position and its units; selected rows
    Exported(
        "12_Explore.py",
        4,
        1,
        {
            "store": "stores/toy",
            "site": SITES[1],
            "sel": "0-19",
            "color": "position",
            "compare": "ckpt/toy/step20",
        },
    ),
]


@pytest.mark.parametrize("case", EXPORTED, ids=lambda c: Path(c.page).stem)
def test_every_chart_and_table_has_its_downloads(case, every_page_runs, monkeypatch, request):
    """Every plotly chart of a page has its "HTML" button and a named toolbar PNG; every table
    its "CSV" and "Parquet" buttons (counted over the page's element tree)."""
    monkeypatch.setenv(RUNS_ENV, str(every_page_runs))
    if case.zoo:
        monkeypatch.setenv(ZOO_ENV, str(request.getfixturevalue("quick_zoo")))
    page = HOME if case.page == HOME.name else PAGES / case.page
    at = AppTest.from_file(str(page), default_timeout=120)
    at.query_params.update(case.query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]  # the query was understood
    charts = at.get("plotly_chart")
    tables = len(at.dataframe) + len(at.table)
    assert (len(charts), tables) == (case.charts, case.tables)
    labels = labels_of(at)
    assert labels.count("HTML") == len(charts)
    assert labels.count("CSV") == labels.count("Parquet") == tables
    for chart in charts:  # drawn by show_figure: the toolbar's PNG is named after the view
        png = json.loads(chart.proto.config)["toImageButtonOptions"]
        assert png["filename"] not in ("", "export", "newplot"), png


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
