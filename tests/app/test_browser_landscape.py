"""The Landscape page (app/pages/3_Landscape.py) over real `intrinsic-dim` results: AppTest for
the page logic, and the real app in headless Chromium (charts drawn, no exception, a
screenshot in $WORKBENCH_SCREENSHOTS or pytest's tmp dir)."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_browser import needs_chromium, rendered_page, wait_for_charts
from streamlit.testing.v1 import AppTest

from analyses.landscape.sweep import TrainConfig, intrinsic_dimension
from analyses.landscape.tasks import zoo_model
from workbench_app.services.runsdir import RUNS_ENV

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "3_Landscape.py")
WIDTHS = (16, 32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A runs dir with two real (short) sweeps: MLPs of hidden width 16 and 32."""
    root = tmp_path_factory.mktemp("runs")
    for width in WIDTHS:
        name = f"digits-mlp-w{width}"
        factory, task = zoo_model(name)
        intrinsic_dimension(
            factory,
            task,
            [5, 200, 800],
            "fastfood",
            config=TrainConfig(epochs=4),
            model_name=name,
            out=root / "intrinsic-dim" / name,
            progress=False,
        )
    return root


def run_page(monkeypatch, runs_dir: Path, **query) -> AppTest:
    monkeypatch.setenv(RUNS_ENV, str(runs_dir))
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_page_shows_the_chosen_result(monkeypatch, runs):
    at = run_page(monkeypatch, runs, result="intrinsic-dim/digits-mlp-w32")
    assert not at.exception
    assert at.selectbox[0].value == "intrinsic-dim/digits-mlp-w32"
    values = {m.label: m.value for m in at.metric}
    assert values["D (parameters)"] == f"{32 * 32 + 76 * 32 + 10:,}"
    assert values["model"] == "digits-mlp-w32"
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # performance vs d; d_int90 vs D across the two results


def test_page_without_results_says_how_to_make_one(monkeypatch, tmp_path):
    (tmp_path / "notes.txt").write_text("not a result")  # not empty: the page's own message
    at = run_page(monkeypatch, tmp_path)
    assert not at.exception
    assert "workbench landscape-dim" in at.info[0].value


def test_result_outside_the_runs_dir_is_not_offered(monkeypatch, runs):
    at = run_page(monkeypatch, runs, result="../../etc")
    assert not at.exception
    assert at.selectbox[0].value in {f"intrinsic-dim/digits-mlp-w{w}" for w in WIDTHS}


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_landscape_page_in_chromium(runs, tmp_path):
    path = "Landscape?result=intrinsic-dim/digits-mlp-w16"
    with rendered_page(runs, path, 2, "page-landscape.png", tmp_path) as (page, text):
        plots = wait_for_charts(page, 2, timeout_ms=90_000)
        assert "d_int90" in text and "digits-mlp-w16" in text
        curve = next(p for p in plots if "subspace dimension" in p["title"])
        assert curve["names"] == ["each seed", "mean over seeds"]
        assert sorted(curve["x"][1]) == [5, 200, 800]
        assert all(0.0 <= y <= 1.0 for y in curve["y"][1])
