"""Every page of the app over an empty runs directory (a fresh user's first `workbench app`): no
blank page and no traceback, but one info naming the one command that fills it (`workbench demo
--no-app --out RUNS`). Pages that read only the runs directory stop there; those with something
to offer without it (zoo models, forms) go on below it. AppTest for every page, and the real app
in headless Chromium for what the user sees."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_browser import browser_page, full_page_screenshot, needs_chromium, serve, shots_dir
from app_stores import HOME
from streamlit.testing.v1 import AppTest

from workbench.zoo import ZOO_ENV
from workbench_app.services.runsdir import fill_command

PAGES = sorted(HOME.parent.joinpath("pages").glob("[0-9]*_*.py"))
#: pages that go on below the notice: the Model page runs zoo models and MiniLM, the Jobs and
#: Upload pages have forms that fill the runs dir themselves (Steering goes on too once the zoo's
#: toy-lm is built; over the empty zoo here it stops)
GOES_ON = {"1_Model.py", "13_Jobs.py", "14_Upload.py"}


@pytest.fixture
def empty(runs_dir, tmp_path, monkeypatch) -> Path:
    """The empty runs dir (with an empty folder in it, as a cancelled first capture leaves) and
    an empty zoo: nothing built yet."""
    (runs_dir / "stores").mkdir()
    monkeypatch.setenv(ZOO_ENV, str(tmp_path / "zoo"))
    return runs_dir


def test_the_pages_named_here_exist():
    assert len(PAGES) >= 13 and GOES_ON.issubset(p.name for p in PAGES)


@pytest.mark.parametrize("page", [HOME, *PAGES], ids=lambda p: p.stem)
def test_an_empty_runs_dir_shows_the_command_that_fills_it(page, empty):
    at = AppTest.from_file(str(page), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    notice = at.info[0].value if at.info else ""
    assert f"The runs directory `{empty.resolve()}` is empty." in notice
    assert f"```bash\n{fill_command(empty)}\n```" in notice
    others = [m.value for m in [*at.info[1:], *at.warning, *at.error]]
    if page.name in GOES_ON:
        assert at.selectbox or at.text_input or at.button, "the page went on below the notice"
    else:
        assert not others, others  # the one message
        assert not (at.selectbox or at.get("plotly_chart") or at.dataframe)


def test_the_default_runs_dir_of_the_demo_needs_no_out(tmp_path, monkeypatch):
    """`workbench app --runs runs/demo` (where the demo writes) over an empty folder: the
    command is the bare `workbench demo --no-app`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs" / "demo"))
    at = AppTest.from_file(str(HOME), default_timeout=60).run()
    assert not at.exception
    assert "```bash\nworkbench demo --no-app\n```" in at.info[0].value


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_the_notice_in_chromium(tmp_path):
    """In the real app, Home and an analysis page show the notice with the command in a code
    block (its copy button included), and nothing else below the title."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shots = shots_dir(tmp_path)
    with serve(runs, tmp_path / "server.log") as (url, _port, _pid), browser_page() as page:
        for name in ("Home", "Geometry"):
            page.goto(url if name == "Home" else f"{url}/{name}")
            alert = page.locator('[data-testid="stAlert"]')
            block = alert.locator("pre")  # the code block, drawn (highlighted) a moment later
            block.wait_for(timeout=60_000)
            assert alert.count() == 1
            assert block.inner_text().strip() == fill_command(runs)
            assert alert.locator('button[aria-label="Copy to clipboard"]').count() == 1
            assert "is empty" in alert.inner_text()
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator(".js-plotly-plot, [data-testid='stSelectbox']").count() == 0
            full_page_screenshot(page, shots / f"empty-runs-{name.lower()}.png")
