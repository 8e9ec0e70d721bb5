"""The Batch page over a real batch run (quick toy-lm, three checkpoints, three analyses, one of
them failing on purpose): AppTest for the page logic, headless Chromium for the charts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from app_browser import needs_chromium, rendered_page
from streamlit.testing.v1 import AppTest

from workbench.batch import load_spec, make_plan, run_batch
from workbench.runsdir import RUNS_ENV

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "11_Batch.py")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, quick_zoo) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    spec = {
        "name": "toy-dynamics",
        "out": str(runs / "sweeps" / "toy"),
        "zoo_root": str(quick_zoo),
        "device": "cpu",
        "models": [{"model": "toy-lm", "steps": [0, 4, "last"]}],
        "datasets": [{"dataset": "grammar-lm", "n_examples": 32, "max_length": 24}],
        "sites": ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"],
        "analyses": [
            {"analysis": "anisotropy", "params": {"n_pairs": 2000}},
            {"analysis": "probe", "label": "no-such-label"},
            {"analysis": "probe", "label": "topic", "params": {"label_level": "last"}},
        ],
    }
    path = runs / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    status = run_batch(make_plan(load_spec(path), estimate=False))
    assert status["done"] == 12 and status["failed"] == 6
    return runs


def test_page_logic(runs, monkeypatch):
    monkeypatch.setenv(RUNS_ENV, str(runs))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["metric"] = "anisotropy"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox[0].value == "sweeps/toy"
    assert at.selectbox[1].value == "anisotropy" and at.selectbox[2].value == "anisotropy"
    text = " ".join(m.value for m in at.markdown)
    assert "12 done, 6 failed, 0 pending of 18 cells" in text
    rows = at.dataframe[0].value
    assert len(rows) == 6 and set(rows["step"]) == {0, 4, 30}
    failures = at.dataframe[1].value
    assert len(failures) == 6 and failures["error"].str.contains("no-such-label").all()


APP = Path(PAGE).parents[1]


@pytest.mark.parametrize(
    "page", ["Home.py", *sorted(p.name for p in (APP / "pages").glob("[0-9]*.py"))]
)
def test_every_page_stands_a_batch_in_the_runs_dir(page, runs, monkeypatch):
    """Batch cells have their own result.json (not a Result's): no page may take them for
    results (a demo sweep once broke the Collapse page with KeyError)."""
    monkeypatch.setenv(RUNS_ENV, str(runs))
    at = AppTest.from_file(str(APP / page if page == "Home.py" else APP / "pages" / page))
    at.run(timeout=120)
    assert not at.exception, at.exception


def test_no_batch_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "workbench batch run SPEC" in at.info[0].value


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_batch_page_in_browser(runs, tmp_path):
    path = "Batch?batch=sweeps/toy&analysis=anisotropy&metric=anisotropy"
    with rendered_page(runs, path, 2, "page-batch.png", tmp_path) as (page, text):
        assert "anisotropy: anisotropy over training (toy-lm)" in text
        assert "Failed cells" in text
        traces = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd._fullData.length)"
        )
        assert traces[0] == 2  # one line per site
