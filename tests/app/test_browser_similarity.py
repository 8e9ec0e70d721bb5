"""app/pages/4_Similarity.py: through AppTest (values of the maps; a selected cell, from the URL,
drives its pair panel) and in headless Chromium (the charts draw, a click on a cell selects it
and fills the panel, no exception, a screenshot)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from app_browser import PLOTS_JS, needs_chromium, rendered_page
from app_stores import HOME, SITES, make_store
from streamlit.testing.v1 import AppTest
from test_home import values

from analyses.similarity.compare import MEASURES
from analyses.similarity.maps import checkpoint_map, layer_map
from workbench.store import ActivationStore

PAGE = HOME.parent / "pages" / "4_Similarity.py"


def grid(trace: dict) -> np.ndarray:
    """A heatmap's z as a 2-D array (plotly encodes it as base64 with a "r, c" shape string)."""
    z = trace["z"]
    if not isinstance(z, dict):
        return np.asarray(z, dtype=float)
    shape = [int(s) for s in str(z["shape"]).split(",")]
    return values({"z": {k: v for k, v in z.items() if k != "shape"}}, "z").reshape(shape)


def make_runs(runs: Path) -> None:
    """A store, a checkpoint series of three stores, all of the same rows."""
    make_store(runs, "stores/toy")
    for seed, step in ((1, 0), (2, 10), (0, 20)):  # step 20 = the seed of stores/toy
        make_store(runs, f"ckpt/toy/step{step}", seed=seed)


def test_page_values(runs_dir):
    make_runs(runs_dir)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["store"] = "stores/toy"
    at.query_params["measure"] = "cca"
    at.query_params["a"] = "stores/toy"
    at.query_params["b"] = "ckpt/toy/step20"
    at.run()
    assert not at.exception, "\n".join(e.value for e in at.exception)
    charts = at.get("plotly_chart")
    assert len(charts) == 4
    figures = [json.loads(c.proto.spec) for c in charts]
    layer = grid(figures[0]["data"][0])
    assert layer.shape == (3, 3) and np.allclose(np.diag(layer), 1.0)
    # step 20 was written with the seed of stores/toy: identical activations, CCA 1 per layer
    cross = grid(figures[3]["data"][0])
    assert np.allclose(np.diag(cross), 1.0)
    conv = grid(figures[1]["data"][0])
    assert conv.shape == (3, len(SITES)) and np.allclose(conv[-1], 1.0)
    assert np.all(conv[0] < 0.9)  # independent random activations at step 0


def pair_table(at: AppTest, i: int) -> dict[str, float]:
    """Measure -> similarity of the i-th pair panel's table."""
    table = at.dataframe[i].value
    return dict(zip(table["measure"], table["similarity"], strict=True))


def test_selected_cells_drive_the_pair_panels(runs_dir):
    make_runs(runs_dir)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params.update(
        {
            "store": "stores/toy",
            "measure": "cca",
            "a": "stores/toy",
            "b": "ckpt/toy/step20",
            "cell": f"{SITES[0]},{SITES[2]}",
            "step_cell": f"0,{SITES[1]}",
            "pair_cell": f"{SITES[1]},{SITES[1]}",
        }
    )
    at.run()
    assert not at.exception, "\n".join(e.value for e in at.exception)
    assert not at.warning
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    layer, conv, cross = (s for s in specs if "click a cell" in s["layout"]["title"]["text"])
    spectra = [s for s in specs if "Canonical correlations" in s["layout"]["title"]["text"]]
    assert len(spectra) == 3
    layer_cells, step_cells, cross_cells = (pair_table(at, i) for i in range(3))
    # the map's measure: each panel's number is its cell of the map
    assert layer_cells["cca"] == pytest.approx(grid(layer["data"][0])[0, 2])
    assert step_cells["cca"] == pytest.approx(grid(conv["data"][0])[0, 1])
    assert all(v == pytest.approx(1.0) for v in cross_cells.values())  # identical activations
    # every measure: the cell of that measure's map, computed here from the stores
    store = ActivationStore(runs_dir / "stores/toy")
    steps = {s: ActivationStore(runs_dir / f"ckpt/toy/step{s}") for s in (0, 10, 20)}
    assert set(layer_cells) == set(MEASURES)
    for m in MEASURES:
        assert layer_cells[m] == pytest.approx(layer_map(store, measure=m).headline["matrix"][0][2])
        expected = checkpoint_map(steps, measure=m).headline["matrix"][0][1]
        assert step_cells[m] == pytest.approx(expected)
    # the spectrum: CCA's similarity is the mean canonical correlation
    cca = next(t for t in spectra[0]["data"] if t["name"] == "cca")
    rho = values(cca, "y")
    assert rho.mean() == pytest.approx(layer_cells["cca"]) and np.all(np.diff(rho) <= 1e-12)
    # a marker per cell carrying the cell's value; the selected cell outlined
    markers = layer["data"][1]
    assert markers["type"] == "scatter" and len(markers["customdata"]) == 9
    by_cell = {(r, c): v for r, c, v in markers["customdata"]}
    assert by_cell[(SITES[0], SITES[2])] == pytest.approx(grid(layer["data"][0])[0, 2])
    (outline,) = layer["layout"]["shapes"]
    assert (outline["x0"], outline["y0"]) == (1.5, -0.5)  # column 2, row 0
    text = "\n".join(m.value for m in at.markdown)
    for site in (SITES[0], SITES[2]):
        assert f"](Explore?store=stores/toy&site={site})" in text
    compare = f"Explore?store=ckpt/toy/step0&site={SITES[1]}&compare=ckpt/toy/step20"
    assert f"[Both side by side]({compare})" in text


def test_cells_that_do_not_exist_warn(runs_dir):
    make_runs(runs_dir)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params.update(
        {
            "store": "stores/toy",
            "cell": f"blocks.9.nope,{SITES[0]}",
            "step_cell": f"5,{SITES[0]}",
            "pair_cell": "junk",
        }
    )
    at.run()
    assert not at.exception, "\n".join(e.value for e in at.exception)
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 3
    assert "No cell `blocks.9.nope," in warnings[0] and all(s in warnings[0] for s in SITES)
    assert "rows are 0, 10, 20" in warnings[1]
    assert "No cell `junk`" in warnings[2]
    assert not at.dataframe  # no pair panel
    assert sum("Click a cell" in c.value for c in at.caption) == 1


def test_page_without_series_says_how(runs_dir):
    make_store(runs_dir, "stores/toy")
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert any("No checkpoint series" in i.value for i in at.info)


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_page_in_browser(tmp_path):
    """The maps draw; a click on a layer x layer cell selects it: the URL keeps it and the pair
    panel shows that pair."""
    make_runs(tmp_path / "runs")
    path = "Similarity?store=stores/toy&measure=svcca&b=ckpt/toy/step10"
    with rendered_page(tmp_path / "runs", path, 4, "page-similarity.png", tmp_path) as (
        page,
        text,
    ):
        # heatmaps draw as <image> elements (no line paths for wait_for_charts to count)
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot .heatmaplayer image').length >= 3"
            " && document.querySelectorAll('.js-plotly-plot .scatterlayer path.js-line')"
            ".length >= 3",
            timeout=90_000,
        )
        page.wait_for_timeout(1000)
        types = [p["types"] for p in page.evaluate(PLOTS_JS)]
        assert "Layer x layer" in text and "Model x model" in text
        heatmap = ["heatmap", "scatter"]  # each map carries its invisible cell markers
        assert types == [heatmap, heatmap, ["scatter"] * 3, heatmap]
        # click the cell of row 0 (blocks.0), column 2 (blocks.2): off its centre, inside it
        layer = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        assert layer is not None
        x = layer["x"] + (2 + 0.7) / 3 * layer["width"]
        y = layer["y"] + (0 + 0.3) / 3 * layer["height"]
        page.mouse.move(x - 5, y - 5)
        page.mouse.move(x, y)
        page.wait_for_timeout(300)
        page.mouse.click(x, y)
        selected = f"Selected: {SITES[0]} of stores/toy vs {SITES[2]} of stores/toy"
        page.get_by_text(selected).wait_for(timeout=60_000)
        assert parse_qs(urlparse(page.url).query)["cell"] == [f"{SITES[0]},{SITES[2]}"]
        errors = page.locator('[data-testid="stException"]')
        assert errors.count() == 0, errors.first.inner_text()
