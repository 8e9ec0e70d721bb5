"""The Massive page: AppTest over a store with a planted value (with and without a tracking
job's folder), and the real app in headless Chromium with a screenshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_browser import needs_chromium, rendered_page
from app_stores import make_store
from streamlit.testing.v1 import AppTest

from analyses.massive.track import write_outputs

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "6_Massive.py")
STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000], float)


def write_job(runs: Path) -> Path:
    """A tracking job's folder: exp-log trajectories (peak at ~787 steps) and an ablation."""
    x = 1e-2 * STEPS + 1.2
    trajectory = pd.concat(
        [
            pd.DataFrame(
                {
                    "step": STEPS.astype(int),
                    "layer": layer,
                    "ratio": a * np.exp(-0.05 * x) * np.log(x) + 5,
                }
            )  # fmt: skip
            for layer, a in enumerate((20.0, 40.0))
        ]
    )
    rows = []
    for mode in ("zero", "mean"):
        for target, draws in (("massive", 1), ("random", 3)):
            for draw in range(draws):
                delta = (0.8 if mode == "zero" else 0.01) if target == "massive" else 0.001 * draw
                rows.append({"site": "blocks.1.hook_resid_post", "mode": mode, "target": target,
                             "draw": draw, "n_entries": 8, "loss": 2.0 + delta,
                             "clean_loss": 2.0, "delta_loss": delta})  # fmt: skip
    entries = pd.DataFrame({"example": [0], "position": [0], "dim": [5], "value": [-40.0]})
    return write_outputs(runs / "massive" / "toy", trajectory, pd.DataFrame(rows), entries)


def run_page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_store_only_finds_the_planted_value(runs_dir):
    store = make_store(runs_dir, "stores/toy")
    example = store.planted_row // 6
    at = run_page(store="stores/toy", site=store.planted_site, example=str(example))
    assert not at.exception
    assert len(at.get("plotly_chart")) == 3
    top = at.dataframe[0].value
    assert top["value"].iloc[0] == store.planted_value
    assert top["dim"].iloc[0] == store.planted_dim
    assert top["position"].iloc[0] == store.planted_row % 6
    assert any("No tracking job" in i.value for i in at.info)


def test_with_a_tracking_job_shows_fit_and_ablation(runs_dir):
    make_store(runs_dir, "stores/toy")
    write_job(runs_dir)
    at = run_page(store="stores/toy")
    assert not at.exception
    assert len(at.get("plotly_chart")) == 5
    fits = at.dataframe[1].value
    assert (fits["r2"] > 0.99).all()
    assert fits["peak_step"].to_numpy() == pytest.approx([787.0] * 2, rel=0.05)
    ablation = at.dataframe[2].value
    assert list(ablation["delta_massive"]) == pytest.approx([0.8, 0.01])


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_page_in_chromium(tmp_path):
    runs = tmp_path / "runs"
    store = make_store(runs, "stores/toy")
    write_job(runs)
    query = f"store=stores/toy&site={store.planted_site}&example={store.planted_row // 6}"
    with rendered_page(runs, f"Massive?{query}", 5, "page-massive.png", tmp_path) as (
        _page,
        text,
    ):
        assert "Massive activations" in text and "Ablation" in text
