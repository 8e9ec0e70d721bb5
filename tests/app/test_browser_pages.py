"""Every page of the app in headless Chromium, over a runs dir and a (quick-built) zoo: no
exception, charts present, a screenshot each."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_browser import browser_page, chromium_path, full_page_screenshot, serve
from app_stores import make_store

from workbench import zoo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if chromium_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI is set but no `chromium` is on PATH: .ci/run must install it")
    pytest.skip("no chromium on PATH (set CI to make this an error)", allow_module_level=True)

PAGES = [("home", "", 2), ("model", "Model?model=toy-lm&prompt=the+big+dog+ran+.", 2)]


@pytest.mark.parametrize("name,path,n_charts", PAGES)
def test_page_renders(name, path, n_charts, tmp_path, monkeypatch):
    root = tmp_path / "zoo"
    zoo.build("toy-lm", root, quick=True)
    monkeypatch.setenv(zoo.ZOO_ENV, str(root))  # inherited by the server
    make_store(tmp_path / "runs", "stores/toy")
    shots = Path(os.environ.get("WORKBENCH_SCREENSHOTS", tmp_path))
    with (
        serve(tmp_path / "runs", tmp_path / "server.log") as (url, _port, _pid),
        browser_page() as page,
    ):
        page.goto(f"{url}/{path}")
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_charts}",
            timeout=90_000,
        )
        page.wait_for_timeout(1000)
        errors = page.locator('[data-testid="stException"]')
        assert errors.count() == 0, errors.first.inner_text()
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert ("Model zoo" in text) if name == "home" else ("Logit lens" in text)
        shot = full_page_screenshot(page, shots / f"page-{name}.png")
    assert shot.stat().st_size > 20_000
