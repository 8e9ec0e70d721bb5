"""The Geometry page: AppTest (values and charts over layers and checkpoints) and headless
Chromium (renders, no exception, a screenshot)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_browser import needs_chromium, rendered_page
from streamlit.testing.v1 import AppTest

from workbench.store import StoreWriter

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "2_Geometry.py")
SITES = ["blocks.0.hook_resid_post", "blocks.0.mlp.hook_post", "blocks.1.hook_resid_post"]


def write_store(
    runs: Path, step: int, latent: int, n: int = 400, sites: list[str] = SITES, folder="series"
) -> Path:
    """A store of checkpoint `step`: residual sites on a `latent`-dim linear manifold, and a
    ReLU site (unit 0 dead)."""
    rng = np.random.default_rng(step)
    z = rng.normal(size=(n, latent))
    acts = {
        sites[0]: z @ rng.normal(size=(latent, 16)),
        sites[1]: np.maximum(z @ rng.normal(size=(latent, 12)), 0.0),
        sites[2]: z @ rng.normal(size=(latent, 16)) + 3.0,
    }
    acts[sites[1]][:, 0] = 0.0
    spec = {
        "model": f"toy@{step}",
        "checkpoint_step": step,
        "dataset": "planted",
        "sites": sites,
        "dtype": "float32",
    }
    path = runs / folder / f"step{step}"
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
    assert at.selectbox[-1].value == "twonn: dimension"  # estimate shown over checkpoints
    over = json.loads(charts[4].proto.spec)["data"]
    assert {trace["name"] for trace in over} == set(SITES)
    for trace in over:  # planted latent dimensions 2, 3, 4 at steps 0, 100, 1000
        assert decode(trace["x"]).tolist() == [0, 100, 1000]
        assert np.round(decode(trace["y"])).tolist() == [2, 3, 4]


def test_side_by_side_draws_both_stores_and_their_difference(series_runs):
    """Checkpoint 1000 (latent dimension 4) against checkpoint 0 (dimension 2): both on the same
    axes over the shared sites, and a difference table that is A minus B; `site` marks a site."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update(
        {"store": "series/step1000", "store_b": "series/step0", "site": SITES[2]}
    )
    at.run()
    assert not at.exception, at.exception
    assert not at.warning
    assert at.query_params["store_b"] == "series/step0" and at.query_params["site"] == SITES[2]
    ids = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {trace["name"] for trace in ids["data"]}
    assert {"twonn: dimension, series/step1000", "twonn: dimension, series/step0"} <= names
    assert [shape["x0"] for shape in ids["layout"]["shapes"]] == [SITES[2]]
    sparsity = json.loads(at.get("plotly_chart")[3].proto.spec)
    assert "shapes" not in sparsity["layout"]  # no values at SITES[2] (not after a ReLU)
    a, b, diff = (frame.value for frame in at.dataframe[:3])
    expected = (a - b).loc[diff.index]
    pd.testing.assert_frame_equal(diff, expected, check_names=False)
    assert diff["twonn: dimension"].round().tolist() == [2, 2, 2]  # planted 4 minus 2
    assert diff["sparsity: dead_fraction"].dropna().tolist() == pytest.approx([0.0])


def test_side_by_side_keeps_to_the_shared_sites(series_runs):
    write_store(series_runs, 5, 3, sites=[SITES[0], "mlp.relu", SITES[2]], folder="half")
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update({"store": "series/step1000", "store_b": "half/step5"})
    at.run()
    assert not at.exception, at.exception
    diff = at.dataframe[2].value
    assert diff.index.get_level_values("site").tolist() == [SITES[0], SITES[2]]
    assert any(f"not shared: {SITES[1]}, mlp.relu" in c.value for c in at.caption)


def test_second_store_without_shared_sites_is_refused(series_runs):
    other = ["fc1", "fc2", "fc3"]
    write_store(series_runs, 7, 3, sites=other, folder="mlp")
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update(
        {"store": "series/step1000", "store_b": "mlp/step7", "site": "blocks.9.nope"}
    )
    at.run()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning]
    assert "`mlp/step7` shares no site with `series/step1000`: not compared" in warnings[0]
    assert "series/step0, series/step100" in warnings[0]  # the stores that do
    assert "No site `blocks.9.nope`" in warnings[1] and SITES[0] in warnings[1]
    side = next(s for s in at.selectbox if s.label.startswith("Side by side"))
    assert side.value == "(none)" and "mlp/step7" not in side.options
    assert at.query_params["store_b"] == "(none)"
    assert len(at.dataframe) == 1  # no second store, no difference


def test_geometry_page_without_stores(runs_dir):
    (runs_dir / "notes.txt").write_text("not a store")  # not empty: the page's own message
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
