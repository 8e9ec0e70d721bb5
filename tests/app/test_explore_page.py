"""The Explore page: a selection on the activation map drives the other panels and lives in the
URL. AppTest for the page logic (a selection given by the URL), headless Chromium for a real box
selection with the mouse and for opening the resulting link in a fresh browser."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from app_browser import browser_page, full_page_screenshot, needs_chromium, serve
from app_stores import make_store
from streamlit.testing.v1 import AppTest

from analyses.explore.api import sample_rows
from workbench_app.services.runsdir import RUNS_ENV

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "12_Explore.py")
SITE = "blocks.1.hook_resid_post"  # make_store plants a value of -321.5 at unit 5 here


@pytest.fixture
def runs(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    store = make_store(runs, "stores/toy", n_examples=40)
    monkeypatch.setenv(RUNS_ENV, str(runs))
    return runs, store


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(array) -> list:
    """A plotly JSON array as a list (plotly 6 writes numeric arrays as base64 `bdata`)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def test_selection_from_the_url_drives_the_panels(runs):
    _runs, store = runs
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"store": "stores/toy", "site": SITE, "sel": str(store.planted_row)})
    at.run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == f"Selection: 1 of {store.n_rows} mapped rows"
    specs = chart_specs(at)
    map_traces = specs[0]["data"]
    assert map_traces[-1]["name"] == "selected (1)"  # a linked selection is drawn as a ring
    units = next(s for s in specs if "Cohen" in s["layout"]["title"]["text"])
    assert units["data"][0]["x"][0] == str(store.planted_dim)  # the planted unit tops the list
    contexts = at.dataframe[0].value
    assert contexts["row"].tolist() == [store.planted_row]
    assert contexts["context"].iloc[0].count("[") == 1
    params = dict(at.query_params)
    assert params["map"] == "pca" and params["site"] == SITE and params["color"] == "(none)"


def test_colour_by_label_and_selection_of_many(runs):
    _runs, store = runs
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"store": "stores/toy", "color": "position", "sel": "0-59"})
    at.run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == f"Selection: 60 of {store.n_rows} mapped rows"
    makeup = next(s for s in chart_specs(at) if "share among" in s["layout"]["title"]["text"])
    shares = {t["name"]: dict(zip(t["x"], values(t["y"]), strict=True)) for t in makeup["data"]}
    assert shares["share_all"]["0"] == pytest.approx(1 / 6)  # 6 positions per example
    assert shares["share_selected"]["3"] == pytest.approx(1 / 6)  # rows 0-59: 10 whole examples
    assert len(at.dataframe[0].value) == 50 and "first 50 of 60" in at.caption[-1].value


def test_side_by_side_links_the_selection_across_two_stores(tmp_path, monkeypatch):
    """Two stores of the same rows (same tokens; the second plants its outlier at another unit)
    are mapped side by side with the selection ringed on both; a store of other rows is refused
    with a warning."""
    runs = tmp_path / "runs"
    first = make_store(runs, "stores/step0", n_examples=40)
    make_store(runs, "stores/step9", n_examples=40, planted_dim=9)
    make_store(runs, "stores/other", n_examples=40, seed=5)
    monkeypatch.setenv(RUNS_ENV, str(runs))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(
        {"store": "stores/step0", "site": SITE, "compare": "stores/step9", "sel": "7,150"}
    )
    at.run()
    assert not at.exception, at.exception
    specs = chart_specs(at)
    maps = [s for s in specs if "rows at" in s["layout"]["title"]["text"]]
    assert [m["layout"]["title"]["text"].split(":")[0] for m in maps] == [
        "stores/step0",
        "stores/step9",
    ]
    assert [m["data"][-1]["name"] for m in maps] == ["selected (2)", "selected (2)"]
    assert first.planted_row == 150
    options = next(s for s in at.selectbox if s.label.startswith("Side by side")).options
    assert set(options) == {"(none)", "stores/step9", "stores/other"}
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"store": "stores/step0", "site": SITE, "compare": "stores/other"})
    at.run()
    assert not at.exception, at.exception
    assert "holds other rows" in at.warning[0].value
    assert sum("rows at" in s["layout"]["title"]["text"] for s in chart_specs(at)) == 1


def test_bad_selection_and_sampling(runs):
    _runs, store = runs
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"store": "stores/toy", "sel": "3-9999", "n": "500", "seed": "3"})
    at.run()
    assert not at.exception, at.exception
    assert "rows run from 0 to 239" in at.warning[0].value
    assert "Nothing selected yet" in at.info[0].value
    assert len(sample_rows(store.n_rows, 500, 3)) == store.n_rows  # all 240 rows are mapped


def test_no_store_says_how_to_make_one(tmp_path, monkeypatch):
    make_store(tmp_path, "stores/partial", finalize=False)  # not empty, but nothing complete
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and "workbench capture" in at.info[0].value


def drag_box(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """A box selection with the mouse over the map's drag layer (fractions of its size)."""
    layer = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    assert layer is not None
    page.mouse.move(layer["x"] + x0 * layer["width"], layer["y"] + y0 * layer["height"])
    page.mouse.down()
    for t in np.linspace(0, 1, 8)[1:]:
        page.mouse.move(
            layer["x"] + (x0 + t * (x1 - x0)) * layer["width"],
            layer["y"] + (y0 + t * (y1 - y0)) * layer["height"],
        )
    page.mouse.up()


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_box_selection_in_browser_drives_panels_and_the_link_reproduces_it(runs, tmp_path):
    runs_dir, store = runs
    import os

    shots = Path(os.environ.get("WORKBENCH_SCREENSHOTS", tmp_path))
    query = f"Explore?store=stores/toy&site={SITE}"
    with serve(runs_dir, tmp_path / "server.log") as (url, _port, _pid):
        with browser_page() as page:
            page.goto(f"{url}/{query}")
            page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=120_000)
            page.wait_for_timeout(1000)
            # the planted row sits alone at the far left of PC1 (its -321.5 dominates PC1)
            drag_box(page, 0.0, 0.02, 0.3, 0.98)
            page.get_by_text("Selection: 1 of 240 mapped rows").wait_for(timeout=60_000)
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2"
            )
            errors = page.locator('[data-testid="stException"]')
            assert errors.count() == 0, errors.first.inner_text()
            sel = parse_qs(urlparse(page.url).query)["sel"]
            assert sel == [str(store.planted_row)]
            shared = page.url
            full_page_screenshot(page, shots / "page-explore-selected.png")
        with browser_page() as fresh:  # a new browser: nothing but the link
            fresh.goto(shared)
            fresh.get_by_text("Selection: 1 of 240 mapped rows").wait_for(timeout=120_000)
            fresh.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2"
            )
            top_unit = fresh.evaluate(
                """() => [...document.querySelectorAll('.js-plotly-plot')]
                    .find(gd => gd.layout.title.text.includes('Cohen'))._fullData[0].x[0]"""
            )
            assert top_unit == str(store.planted_dim)
            # the map may redraw after the panels: wait for its selected trace, then check it
            names_js = "() => document.querySelector('.js-plotly-plot')._fullData.map(t => t.name)"
            from playwright.sync_api import TimeoutError as PlaywrightTimeout

            with contextlib.suppress(PlaywrightTimeout):
                fresh.wait_for_function(f"({names_js})().includes('selected (1)')", timeout=30_000)
            names = fresh.evaluate(names_js)
            assert "selected (1)" in names
            full_page_screenshot(fresh, shots / "page-explore-shared.png")
