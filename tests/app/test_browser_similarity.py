"""app/pages/4_Similarity.py: through AppTest (values of the maps) and in headless Chromium (the
charts draw, no exception, a screenshot)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from app_browser import PLOTS_JS, needs_chromium, rendered_page
from app_stores import HOME, SITES, make_store
from streamlit.testing.v1 import AppTest
from test_home import values

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


def test_page_without_series_says_how(runs_dir):
    make_store(runs_dir, "stores/toy")
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert any("No checkpoint series" in i.value for i in at.info)


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_page_in_browser(tmp_path):
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
        assert types == [["heatmap"], ["heatmap"], ["scatter"] * 3, ["heatmap"]]
