"""The Geometry page: AppTest (values and charts over layers and checkpoints) and headless
Chromium (renders, no exception, a screenshot)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from app_browser import needs_chromium, rendered_page
from streamlit.testing.v1 import AppTest

from workbench.store import StoreWriter

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "2_Geometry.py")
SITES = ["blocks.0.hook_resid_post", "blocks.0.mlp.hook_post", "blocks.1.hook_resid_post"]


def write_store(runs: Path, step: int, latent: int, n: int = 400) -> Path:
    """A store of checkpoint `step`: residual sites on a `latent`-dim linear manifold, and a
    ReLU site (unit 0 dead)."""
    rng = np.random.default_rng(step)
    z = rng.normal(size=(n, latent))
    acts = {
        SITES[0]: z @ rng.normal(size=(latent, 16)),
        SITES[1]: np.maximum(z @ rng.normal(size=(latent, 12)), 0.0),
        SITES[2]: z @ rng.normal(size=(latent, 16)) + 3.0,
    }
    acts[SITES[1]][:, 0] = 0.0
    spec = {
        "model": f"toy@{step}",
        "checkpoint_step": step,
        "dataset": "planted",
        "sites": SITES,
        "dtype": "float32",
    }
    path = runs / "series" / f"step{step}"
    writer = StoreWriter(path, spec, provenance={"made_by": "tests/app"})
    writer.append(
        {k: v.astype(np.float32) for k, v in acts.items()},
        token_ids=None,
        example_index=np.arange(n),
        position=None,
    )
    writer.finalize()
    return path


def decode(values) -> np.ndarray:
    """A plotly JSON array: a list, or {"dtype", "bdata"} (base64 typed array)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


@pytest.fixture
def series_runs(runs_dir) -> Path:
    for step, latent in ((0, 2), (100, 3), (1000, 4)):
        write_store(runs_dir, step, latent)
    return runs_dir


def test_geometry_page_over_layers_and_checkpoints(series_runs):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["store"] = "series/step1000"
    at.run()
    assert not at.exception
    assert at.selectbox[0].value == "series/step1000"
    assert [s.value for s in at.subheader] == ["Over layers", "Over checkpoints"]
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # ID, anisotropy, effective rank, sparsity; one over checkpoints
    table = at.dataframe[0].value
    twonn = table["twonn: dimension"]
    assert twonn.round().tolist() == [4, 4, 4]  # latent dimension 4 at step 1000
    sparsity = table["sparsity: dead_fraction"].dropna()
    assert sparsity.tolist() == pytest.approx([1 / 12])  # unit 0 of the ReLU site
    assert at.selectbox[1].value == "twonn: dimension"  # estimate shown over checkpoints
    over = json.loads(charts[4].proto.spec)["data"]
    assert {trace["name"] for trace in over} == set(SITES)
    for trace in over:  # planted latent dimensions 2, 3, 4 at steps 0, 100, 1000
        assert decode(trace["x"]).tolist() == [0, 100, 1000]
        assert np.round(decode(trace["y"])).tolist() == [2, 3, 4]


def test_geometry_page_without_stores(runs_dir):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "No complete stores" in at.info[0].value


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_geometry_page_in_chromium(series_runs, tmp_path):
    path = "Geometry?store=series/step100"
    with rendered_page(series_runs, path, 5, "page-geometry.png", tmp_path) as (_page, text):
        assert "Representation geometry" in text and "over training" in text
