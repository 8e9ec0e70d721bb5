"""The Batch page over a real batch run (quick toy-lm, three checkpoints, three analyses, one of
them failing on purpose): AppTest for the page logic, headless Chromium for the charts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from app_browser import PLOTS_JS, needs_chromium, rendered_page
from streamlit.testing.v1 import AppTest

from workbench.batch import load_spec, make_plan, run_batch
from workbench.zoo import ZOO_ENV
from workbench_app.services.runsdir import RUNS_ENV

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
    rows = _table(at, "cell")
    assert len(rows) == 6 and set(rows["step"]) == {0, 4, 30}
    failures = _table(at, "error")
    assert len(failures) == 6 and failures["error"].str.contains("no-such-label").all()


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The page's one dataframe that has `column`."""
    tables = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(tables) == 1, [list(d.value.columns) for d in at.dataframe]
    return tables[0]


def _charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures (as plotly JSON) by title."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {f["layout"]["title"]["text"]: f for f in figures}


def _values(array) -> list:
    """A trace's data array as a list: plotly's JSON writes numeric arrays as base64 bytes."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), array["dtype"]).tolist()
    return list(array)


SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


def _parquet(runs: Path, step: int) -> pd.DataFrame:
    """The anisotropy entry's values at `step` straight from results.parquet: site x metric."""
    frame = pd.read_parquet(runs / "sweeps" / "toy" / "results.parquet")
    rows = frame[(frame["entry"] == "anisotropy") & (frame["step"] == step)]
    return rows.pivot(index="site", columns="metric", values="value").loc[SITES]


def _check_scrubber(at: AppTest, runs: Path, quick_zoo: Path, step: int) -> None:
    """The scrubber at `step`: the slider, the URL, the table, the per-site charts (against the
    parquet; step 0 drawn for reference) and the training curve with its marker."""
    assert not at.exception, at.exception
    assert at.select_slider[0].value == step and at.query_params["step"] == str(step)
    assert list(at.select_slider[0].proto.options) == ["0", "4", "30"]
    expected = _parquet(runs, step)
    table = _table(at, "series").set_index("site").loc[SITES]
    for metric in ("anisotropy", "anisotropy_all_pairs"):
        assert table[metric].tolist() == pytest.approx(expected[metric].tolist(), rel=1e-12)
    charts = _charts(at)
    main = charts[f"anisotropy: anisotropy over sites at step {step} (toy-lm)"]
    other = charts[f"anisotropy: its other metrics over sites at step {step}"]
    for figure, metric in ((main, "anisotropy"), (other, "anisotropy_all_pairs")):
        traces = {t["name"]: t for t in figure["data"]}
        now = traces[f"grammar-lm, step {step}"]
        assert _values(now["x"]) == SITES
        assert _values(now["y"]) == pytest.approx(expected[metric].tolist())
        if step != 0:
            first = traces["grammar-lm, step 0 (first)"]
            assert _values(first["y"]) == pytest.approx(_parquet(runs, 0)[metric].tolist())
            assert first["opacity"] < 1 and "opacity" not in now
        else:
            assert len(traces) == 1
    curve = json.loads((quick_zoo / "toy-lm" / "metrics.json").read_text())["curve"]
    loss = charts[f"toy-lm training curve, step {step} marked"]
    train = next(t for t in loss["data"] if t["name"] == "train_loss")
    assert _values(train["y"]) == pytest.approx([p["train_loss"] for p in curve])
    (marker,) = loss["layout"]["shapes"]
    offset = 1 if loss["layout"]["xaxis"]["title"]["text"] == "step + 1" else 0
    assert marker["x0"] == marker["x1"] == step + offset


def test_scrubber_follows_the_url_and_the_slider(runs, quick_zoo, monkeypatch):
    monkeypatch.setenv(RUNS_ENV, str(runs))
    monkeypatch.setenv(ZOO_ENV, str(quick_zoo))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(analysis="anisotropy", metric="anisotropy", step="4")
    at.run()
    _check_scrubber(at, runs, quick_zoo, 4)
    at.select_slider[0].set_value(30).run()
    _check_scrubber(at, runs, quick_zoo, 30)
    at.select_slider[0].set_value(0).run()
    _check_scrubber(at, runs, quick_zoo, 0)


def test_every_move_of_a_picker_reaches_the_url(runs, monkeypatch):
    """A widget default computed from the URL changes the widget's identity after each move and
    Streamlit then drops every second move: the pickers keep their state under a key instead."""
    monkeypatch.setenv(RUNS_ENV, str(runs))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    for metric in ("anisotropy_all_pairs", "anisotropy", "anisotropy_all_pairs"):
        at.selectbox[2].set_value(metric).run()
        assert at.selectbox[2].value == metric and at.query_params["metric"] == metric
        assert _charts(at)[f"anisotropy: {metric} over training (toy-lm)"]


@pytest.mark.parametrize(("wanted", "step"), [("banana", 30), ("5", 4), (None, 30)])
def test_scrubber_step_from_a_bad_or_missing_url_value(wanted, step, runs, quick_zoo, monkeypatch):
    """An unparseable or missing `step` is the last checkpoint, an off-grid one the nearest."""
    monkeypatch.setenv(RUNS_ENV, str(runs))
    monkeypatch.setenv(ZOO_ENV, str(quick_zoo))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(analysis="anisotropy", metric="anisotropy")
    if wanted is not None:
        at.query_params["step"] = wanted
    at.run()
    _check_scrubber(at, runs, quick_zoo, step)


def test_scrubber_without_the_batch_zoo_says_why_and_still_shows_sites(runs, tmp_path, monkeypatch):
    """The app reads only its runs directory and its own zoo: a batch run on another zoo gets a
    caption instead of the training curve (and the per-site views all the same)."""
    monkeypatch.setenv(RUNS_ENV, str(runs))
    monkeypatch.setenv(ZOO_ENV, str(tmp_path / "another-zoo"))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(analysis="anisotropy", metric="anisotropy", step="4")
    at.run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "outside the folders the app reads" in captions and "--zoo-root" in captions
    titles = list(_charts(at))
    assert "anisotropy: anisotropy over sites at step 4 (toy-lm)" in titles
    assert not any("training curve" in t for t in titles)


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
    (tmp_path / "notes.txt").write_text("not a batch")  # not empty: the page's own message
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "workbench batch run SPEC" in at.info[0].value


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_batch_page_in_browser(runs, quick_zoo, tmp_path, monkeypatch):
    monkeypatch.setenv(ZOO_ENV, str(quick_zoo))  # the server inherits it: the batch's zoo
    path = "Batch?batch=sweeps/toy&analysis=anisotropy&metric=anisotropy&step=4"
    with rendered_page(runs, path, 5, "page-batch.png", tmp_path) as (page, text):
        assert "anisotropy: anisotropy over training (toy-lm)" in text
        assert "Failed cells" in text and "Checkpoint scrubber" in text
        # the scrubber's charts: every line drawn, as SVG paths, in a chart of real size
        scrubber = ("over sites at step 4", "training curve, step 4 marked")
        page.wait_for_function(
            f"() => ({PLOTS_JS})().filter(p => {json.dumps(scrubber)}.some(t => "
            "p.title.includes(t)) && p.paths >= p.types.length).length === 3",
            timeout=30_000,
        )
        plots = {
            p["title"].replace("<b>", "").replace("</b>", ""): p for p in page.evaluate(PLOTS_JS)
        }
        assert len(plots["anisotropy: anisotropy over training (toy-lm)"]["types"]) == 2
        for title in (
            "anisotropy: anisotropy over sites at step 4 (toy-lm)",
            "anisotropy: its other metrics over sites at step 4",
        ):
            plot = plots[title]  # the scrubbed step and the faint first step
            assert plot["names"] == ["grammar-lm, step 4", "grammar-lm, step 0 (first)"]
            assert plot["paths"] == 2 and plot["width"] > 300 and plot["height"] > 300
        loss = plots["toy-lm training curve, step 4 marked"]
        assert loss["names"] == ["train_loss", "test_loss"] and loss["paths"] == 2
        marker = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')].filter(gd =>"
            " gd.layout.title.text.includes('training curve'))"
            ".map(gd => gd.querySelectorAll('.shapelayer path').length)"
        )
        assert marker == [1]  # the vertical line at the scrubbed step
        # drag the scrubber one notch with the keyboard (the slider thumb takes arrow keys): the
        # URL follows, and every per-site chart and the loss curve's marker move to the new step
        thumb = page.get_by_role("slider", name="Checkpoint step")
        thumb.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "() => location.search.includes('step=') && !location.search.includes('step=4')",
            timeout=30_000,
        )
        new_step = int(page.evaluate("() => new URLSearchParams(location.search).get('step')"))
        assert new_step > 4
        page.wait_for_function(
            f"() => ({PLOTS_JS})().filter(p => p.title.includes('at step {new_step}')"
            " || p.title.includes('step " + str(new_step) + " marked')).length === 3",
            timeout=30_000,
        )
        assert page.locator('[data-testid="stException"]').count() == 0
