"""The overview's gathering: headline numbers per site from saved results, curves over
checkpoints from batch results; and the Overview page on them (AppTest, headless Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from app_browser import needs_chromium, rendered_page
from streamlit.testing.v1 import AppTest

from workbench.overview import result_stores, site_headlines, training_curves
from workbench.results import Result
from workbench.runsdir import RUNS_ENV

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "0_Overview.py")
SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.10.hook_resid_post"]


def _save(root: Path, analysis: str, store: str, site: str, headline: dict) -> None:
    frame = pd.DataFrame({"metric": list(headline), "value": list(headline.values())})
    Result(analysis, frame, headline=headline).save(root / "results" / analysis / store / site)


def make_runs(root: Path) -> None:
    for i, site in enumerate(SITES):
        _save(root, "twonn", "toy", site, {"dimension": 3.0 + i})
        _save(root, "anisotropy", "toy", site, {"anisotropy": 0.1 * i})
    _save(root, "twonn", "other", SITES[0], {"dimension": 9.0})
    _save(root, "steering-sweep", "toy", "positive", {"dimension": 1.0})  # not a headline
    batch = root / "sweeps" / "b"
    batch.mkdir(parents=True)
    (batch / "plan.json").write_text(json.dumps({"name": "b", "cells": []}))
    rows = [
        {"model": "toy", "step": step, "site": site, "analysis": "twonn", "metric": "dimension",
         "value": 10.0 - step / 100 + i}
        for step in (300, 0, 100) for i, site in enumerate(SITES[:2])
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(batch / "results.parquet")


def test_headlines_per_site_in_layer_order(tmp_path):
    make_runs(tmp_path)
    assert result_stores(tmp_path) == ["other", "toy"]
    table = site_headlines(tmp_path, "toy")
    assert list(table["site"]) == SITES  # blocks.10 after blocks.1: by layer, not by text
    assert list(table["TwoNN dim"]) == [3.0, 4.0, 5.0]
    assert list(table["anisotropy"]) == [0.0, 0.1, 0.2]
    assert list(site_headlines(tmp_path, "other")["TwoNN dim"]) == [9.0]
    assert site_headlines(tmp_path, "missing").empty


def test_curves_in_step_order(tmp_path):
    make_runs(tmp_path)
    curves = training_curves(tmp_path, "toy").set_index("site")
    assert curves.loc[SITES[0], "TwoNN (training)"] == [10.0, 9.0, 7.0]  # steps 0, 100, 300
    assert curves.loc[SITES[1], "TwoNN (training)"] == [11.0, 10.0, 8.0]
    assert curves.loc[SITES[0], "steps"] == "0..300 (3)"
    assert training_curves(tmp_path, "other").empty


def test_overview_page(tmp_path, monkeypatch):
    make_runs(tmp_path)
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["store"] = "toy"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox[0].value == "toy"
    shown = at.dataframe[0].value
    assert list(shown["site"]) == SITES and list(shown["TwoNN dim"]) == [3.0, 4.0, 5.0]
    assert list(shown["TwoNN (training)"].iloc[0]) == [10.0, 9.0, 7.0]
    assert any("[Geometry](Geometry?store=stores/toy)" in m.value for m in at.markdown)


def test_overview_page_without_results(tmp_path, monkeypatch):
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "workbench demo" in at.info[0].value


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_overview_in_browser(tmp_path):
    runs = tmp_path / "runs"
    make_runs(runs)
    with rendered_page(runs, "Overview?store=toy", 1, "page-overview.png", tmp_path) as (_p, text):
        assert "toy: 3 sites" in text
        assert "headline metrics through depth" in text
