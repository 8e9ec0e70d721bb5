"""The overview's gathering: headline numbers per site from saved results, curves over
checkpoints from batch results, a layer's drill-down (pages, SAE features, codebooks); and the
Overview page on them (AppTest, headless Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_browser import needs_chromium, rendered_page
from fake_plugins import declarations
from streamlit.testing.v1 import AppTest

from workbench.analysis.plugins import Headline, Link, Report, ReportItem, ReportKind, SiteQuery
from workbench.analysis.results import Result
from workbench_app.lib.overview import (
    curve_columns,
    layer_panel,
    result_stores,
    richest_result_store,
    site_headlines,
    training_curves,
)
from workbench_app.services.runsdir import RUNS_ENV

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "0_Overview.py")
SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.10.hook_resid_post"]


@pytest.fixture
def declare(monkeypatch):
    yield from declarations(monkeypatch)


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


def make_drill(root: Path) -> None:
    """Feature reports and codebook models: one of each on SITES[1] of `toy`, and decoys (another
    site, another store, another model). Latent 3 is best for topic=0 (F1 0.9), latent 5 for
    topic=1 (F1 0.7), latent 3 again for topic=2 (F1 0.2: listed once)."""
    from analyses.codebook.model import Codebooks
    from analyses.sae.features import FeatureStats, LabelStats, save_feature_stats

    d_sae = 8
    f1 = np.zeros((d_sae, 3))
    f1[3, 0], f1[5, 1], f1[3, 2] = 0.9, 0.7, 0.2
    stats = FeatureStats(
        n_rows=100,
        density=np.full(d_sae, 0.1),
        max_act=np.ones(d_sae),
        mean_act=np.ones(d_sae),
        top_rows=np.zeros((d_sae, 2), dtype=np.int64),
        top_values=np.zeros((d_sae, 2)),
        labels={"topic": LabelStats("topic", np.arange(3), f1, f1, f1, f1, np.full(3, 30))},
    )
    for folder, store, site in (
        ("sae/toy/features", "elsewhere/stores/toy", SITES[1]),  # the CLI's cwd-relative path
        ("sae/toy0/features", "stores/toy", SITES[0]),
        ("sae/other/features", "stores/other", SITES[1]),
    ):
        meta = {"sae": str(root / folder), "store": store, "site": site}
        save_feature_stats(stats, root / folder, meta)
    for name, base in (("codebooks/toy-cb", "toy@100"), ("codebooks/other-cb", "other@100")):
        books = Codebooks({SITES[1]: 4, SITES[2]: 4}, n_codes=16, k=1, base=base)
        books.report = {"top_codes": {SITES[1]: [[7, 0.5], [2, 0.25]]}}  # as training saves it
        books.save(root / name)


def test_layer_panel_links_features_and_codebooks(tmp_path):
    make_runs(tmp_path)
    make_drill(tmp_path)
    panel = layer_panel(tmp_path, "toy", SITES[1], SITES)
    urls = {link["page"]: link["url"] for link in panel["links"]}
    assert urls == {
        "Geometry": f"Geometry?store=stores/toy&site={SITES[1]}",
        "Explore": f"Explore?store=stores/toy&site={SITES[1]}",
        "Massive": f"Massive?store=stores/toy&site={SITES[1]}",
        "Similarity": f"Similarity?store=stores/toy&cell={SITES[1]},{SITES[2]}",  # the next site
    }
    sae, books = panel["reports"]  # the declared report kinds, in their order
    assert (sae["title"], books["title"]) == ("SAE features trained here", "Codebooks at this site")
    (report,) = sae["reports"]
    assert report["folder"] == "sae/toy/features" and report["summary"] == "100 rows"
    assert report["url"] == "SAE_features?features=sae/toy/features"
    assert [(t["label"], t["text"]) for t in report["items"]] == [
        ("latent 3", ": topic=0 (F1 0.90)"),
        ("latent 5", ": topic=1 (F1 0.70)"),
    ]
    assert report["items"][0]["url"] == "SAE_features?features=sae/toy/features&latent=3"
    assert report["items"][0]["value"] == pytest.approx(0.9)
    (book,) = books["reports"]
    assert book["folder"] == "codebooks/toy-cb" and book["summary"].startswith("16 codes")
    assert book["url"] == f"Codebooks?model=codebooks/toy-cb&site={SITES[1]}"
    assert [(c["label"], c["value"]) for c in book["items"]] == [("code 7", 0.5), ("code 2", 0.25)]
    assert book["items"][0]["url"] == f"Codebooks?model=codebooks/toy-cb&site={SITES[1]}&code=7"
    last = layer_panel(tmp_path, "toy", SITES[2], SITES)
    assert last["links"][-1]["url"].endswith(f"cell={SITES[2]},{SITES[1]}")  # the previous site
    sae, books = last["reports"]
    assert sae["reports"] == [] and [b["folder"] for b in books["reports"]] == ["codebooks/toy-cb"]
    assert f"--store RUNS/stores/toy --site {SITES[2]}" in sae["hint"]  # what to run instead
    assert books["reports"][0]["items"] == []  # no usage saved for that site
    assert layer_panel(tmp_path, "toy", SITES[0], SITES)["reports"][1]["reports"] == []


def test_a_declared_headline_and_report_kind_show_without_touching_the_app(
    tmp_path, declare, monkeypatch
):
    """A family that declares a headline and a report kind (entry points; faked here) gets a
    column, a curve and a drill-down column: nothing in the app names it."""
    make_runs(tmp_path)
    declare("workbench.headlines", "mine", Headline("my-score", "score", "my score", "mine (tr.)"))
    declare("workbench.reports", "notes", ReportKind("notes", "notes.json", "Notes here", notes))
    _save(tmp_path, "my-score", "fresh", SITES[1], {"score": 0.5})
    (tmp_path / "notes" / "n1").mkdir(parents=True)
    (tmp_path / "notes" / "n1" / "notes.json").write_text(json.dumps({"site": SITES[1]}))
    assert result_stores(tmp_path) == ["fresh", "other", "toy"]
    assert site_headlines(tmp_path, "fresh").to_dict("records") == [
        {"site": SITES[1], "layer": 1, "my score": 0.5}
    ]
    assert curve_columns()[-1] == "mine (tr.)"
    *_, mine = layer_panel(tmp_path, "toy", SITES[1], SITES)["reports"]
    assert mine["title"] == "Notes here"
    assert [r["url"] for r in mine["reports"]] == ["Explore?store=stores/toy&site=" + SITES[1]]
    assert mine["reports"][0]["items"][0]["url"] == "Geometry?store=stores/toy"
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"store": "toy", "site": SITES[1]})
    at.run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "**Notes here**" in text
    assert f"[notes/n1](Explore?store=stores/toy&site={SITES[1]}): a note" in text
    assert "- [geometry](Geometry?store=stores/toy)" in text


def notes(path: Path, query: SiteQuery) -> Report | None:
    """A report kind's reader: a `notes.json` at the query's site."""
    if json.loads(path.read_text())["site"] != query.site:
        return None
    item = ReportItem("geometry", "", 1.0, Link("Geometry", {"store": f"stores/{query.store}"}))
    link = Link("Explore", {"store": f"stores/{query.store}", "site": query.site})
    return Report(str(path.parent.relative_to(query.root)), "a note", link, (item,))


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


def test_site_in_the_url_selects_its_row_and_drills_in(tmp_path, monkeypatch):
    make_runs(tmp_path)
    make_drill(tmp_path)
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"store": "toy", "site": SITES[1]})
    at.run()
    assert not at.exception, at.exception
    assert not at.warning
    table = at.dataframe[0]
    assert json.loads(table.proto.selection_default)["selection"]["rows"] == [1]
    assert at.subheader[1].value == f"Layer `{SITES[1]}`"
    text = "\n".join(m.value for m in at.markdown)
    assert f"[Explore](Explore?store=stores/toy&site={SITES[1]})" in text
    assert "[latent 3](SAE_features?features=sae/toy/features&latent=3): topic=0 (F1 0.90)" in text
    assert f"[codebooks/toy-cb](Codebooks?model=codebooks/toy-cb&site={SITES[1]})" in text
    code_7 = f"[code 7](Codebooks?model=codebooks/toy-cb&site={SITES[1]}&code=7) (50.0%)"
    assert code_7 in text
    assert "sae/other" not in text and "other-cb" not in text
    assert at.query_params["site"] == SITES[1]


def test_picking_a_row_drills_into_its_site_and_keeps_it_in_the_url(tmp_path, monkeypatch):
    make_runs(tmp_path)
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["store"] = "toy"
    at.run()
    assert not at.exception, at.exception
    assert "site" not in at.query_params and "Select a row" in at.caption[-2].value
    key = at.dataframe[0].key
    at.session_state[key] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["site"] == SITES[2]
    assert at.subheader[1].value == f"Layer `{SITES[2]}`"
    text = "\n".join(m.value for m in at.markdown)
    assert f"Similarity?store=stores/toy&cell={SITES[2]},{SITES[1]}" in text
    assert any("None yet: `workbench sae train" in c.value for c in at.caption)


def test_unknown_site_in_the_url_warns(tmp_path, monkeypatch):
    make_runs(tmp_path)
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"store": "toy", "site": "blocks.7.nope"})
    at.run()
    assert not at.exception, at.exception
    assert "No site `blocks.7.nope`" in at.warning[0].value
    assert all(site in at.warning[0].value for site in SITES)
    assert not [h for h in at.subheader if h.value.startswith("Layer")]  # no layer panel
    assert "site" not in at.query_params


def test_without_a_store_in_the_url_the_richest_opens(tmp_path, monkeypatch):
    """`toy` (three analyses saved) over `other` (one), though `other` comes first; an unknown
    store in the URL falls back to it too."""
    make_runs(tmp_path)
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    assert result_stores(tmp_path) == ["other", "toy"]
    assert richest_result_store(tmp_path, ["other", "toy"]) == "toy"
    for query in ({}, {"store": "gone"}):
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.query_params.update(query)
        at.run()
        assert not at.exception, at.exception
        assert at.selectbox[0].value == "toy" == at.query_params["store"]
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["store"] = "other"
    assert at.run().selectbox[0].value == "other"  # a link's choice still wins


def test_overview_page_without_results(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("")  # not empty (that is test_empty_runs.py), no result
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "No saved results" in at.info[0].value and "workbench demo" in at.info[0].value


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_overview_in_browser(tmp_path):
    runs = tmp_path / "runs"
    make_runs(runs)
    with rendered_page(runs, "Overview?store=toy", 1, "page-overview.png", tmp_path) as (_p, text):
        assert "toy: 3 sites" in text
        assert "headline metrics through depth" in text
