"""The real app (`workbench app`) in headless Chromium: charts drawn, no exception, 127.0.0.1 only.

Screenshots go to $WORKBENCH_SCREENSHOTS (default: pytest's tmp dir). Without Chromium the tests
skip, unless $CI is set (then they fail: CI must install it).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import psutil
import pytest
from app_browser import browser_page, chromium_path, full_page_screenshot, serve, wait_for_charts
from app_stores import SITES, make_store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if chromium_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError(
            "CI is set but no `chromium` is on PATH: the browser tests need Debian's chromium "
            "(apt-get install chromium); .ci/run must install it"
        )
    pytest.skip("no chromium on PATH (set CI to make this an error)", allow_module_level=True)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    env = os.environ.get("WORKBENCH_SCREENSHOTS")
    path = Path(env) if env else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(url, port, launcher pid, store): the real server over a runs dir with one small store."""
    tmp = tmp_path_factory.mktemp("browser")
    store = make_store(tmp / "runs", "stores/toy")
    with serve(tmp / "runs", tmp / "server.log") as (url, port, pid):
        yield url, port, pid, store


@pytest.fixture(scope="module")
def page(app):
    with browser_page(width=1400, height=1000) as page:
        yield page


def no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def query_of(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def wait_for_query(page, key: str, value: str) -> None:
    page.wait_for_function(
        "([k, v]) => new URLSearchParams(location.search).get(k) === v", arg=[key, value]
    )


def check_png(path: Path, min_height: int) -> None:
    from PIL import Image

    assert path.is_file() and path.stat().st_size > 20_000, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= 1000 and image.height >= min_height, image.size
        colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 50, "the screenshot is (nearly) blank"


def test_home_renders_charts(app, page, screenshots):
    url, _port, _pid, store = app
    page.goto(url)
    plots = wait_for_charts(page, 2)
    no_exception(page)
    assert len(plots) == 2

    depth, bars = plots
    assert "Scale through depth" in depth["title"]
    assert sorted(depth["names"]) == ["max |a|", "mean norm", "rms"]
    assert depth["paths"] >= 3 and depth["width"] > 300 and depth["height"] > 200
    for x, y in zip(depth["x"], depth["y"], strict=True):
        assert x == SITES and len(y) == len(SITES) and all(v > 0 for v in y)
    max_abs = dict(zip(SITES, depth["y"][depth["names"].index("max |a|")], strict=True))
    assert max_abs[store.planted_site] == pytest.approx(abs(store.planted_value))

    assert SITES[-1] in bars["title"] and bars["types"] == ["bar"]
    np.testing.assert_allclose(bars["y"][0], store.max_abs[SITES[-1]], rtol=1e-5)
    assert bars["paths"] == store.max_abs[SITES[-1]].size  # one drawn bar per dim

    text = page.locator('[data-testid="stMain"]').inner_text()
    assert store.model in text and "rows (tokens)" in text and str(store.n_rows) in text
    tables = page.locator('[data-testid="stDataFrame"]')
    assert tables.count() == 2  # the zoo and the per-site statistics
    assert tables.nth(1).bounding_box()["height"] > 80  # the site table has real rows

    wait_for_query(page, "site", SITES[-1])
    assert query_of(page) == {"store": store.relative, "site": SITES[-1]}

    shot = full_page_screenshot(page, screenshots / "home.png")
    check_png(shot, min_height=1200)


def test_site_from_url_and_selectbox(app, page, screenshots):
    url, _port, _pid, store = app
    page.goto(f"{url}/?store={store.relative}&site={store.planted_site}")
    bars = wait_for_charts(page, 2)[1]
    no_exception(page)
    assert store.planted_site in bars["title"]
    assert int(np.argmax(bars["y"][0])) == store.planted_dim
    assert max(bars["y"][0]) == pytest.approx(abs(store.planted_value))
    full_page_screenshot(page, screenshots / "home-planted-site.png")

    # choose another site in the "Site" selectbox: the bar chart and the URL follow
    combobox = page.get_by_role("combobox", name="Site")
    combobox.click()
    if combobox.get_attribute("aria-expanded") != "true":  # a click focuses; a key opens it
        combobox.press("ArrowDown")
    page.get_by_role("option", name=SITES[0], exact=True).click()
    wait_for_query(page, "site", SITES[0])
    page.wait_for_function(
        "s => [...document.querySelectorAll('.js-plotly-plot')]"
        ".some(gd => ((gd.layout.title || {}).text || '').includes(s))",
        arg=SITES[0],
    )
    bars = wait_for_charts(page, 2)[1]
    no_exception(page)
    np.testing.assert_allclose(bars["y"][0], store.max_abs[SITES[0]], rtol=1e-5)


def test_server_listens_on_loopback_only(app):
    _url, port, pid, _store = app
    listening = [
        c
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    ]
    assert listening, f"nothing listens on port {port}"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening
    # the listener is the app's (the launcher or its streamlit child)
    family = {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}
    assert {c.pid for c in listening} <= family
    # and it cannot be reached on this machine's other addresses
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                with pytest.raises(OSError), socket.create_connection((addr.address, port), 2):
                    pass
