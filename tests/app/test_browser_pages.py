"""Every page of the app in headless Chromium, over a runs dir and a (quick-built) zoo: no
exception, charts present, a screenshot each. (The analysis pages have their own files:
test_browser_<analysis>.py.)"""

from __future__ import annotations

import pytest
from app_browser import rendered_page, require_chromium
from app_stores import make_store

from workbench import zoo

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_chromium()

PAGES = [("home", "", 2), ("model", "Model?model=toy-lm&prompt=the+big+dog+ran+.", 2)]


@pytest.mark.parametrize("name,path,n_charts", PAGES)
def test_page_renders(name, path, n_charts, tmp_path, monkeypatch, quick_zoo):
    monkeypatch.setenv(zoo.ZOO_ENV, str(quick_zoo))  # inherited by the server
    make_store(tmp_path / "runs", "stores/toy")
    with rendered_page(tmp_path / "runs", path, n_charts, f"page-{name}.png", tmp_path) as (
        _page,
        text,
    ):
        assert ("Model zoo" in text) if name == "home" else ("Logit lens" in text)
