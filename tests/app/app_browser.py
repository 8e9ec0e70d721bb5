"""Drive the real app: start `workbench app` on a free 127.0.0.1 port, open it in headless Chromium.

Used by test_browser.py, and by hand for a screenshot of any runs directory:

    python tests/app/app_browser.py RUNS_DIR OUT.png [QUERY]     # QUERY like "site=blocks.3.x"
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# JS: each plotly chart on the page, once drawn: its traces as plotly.js holds them after
# decoding (`_fullData`: base64 arrays are typed arrays there), and the SVG paths it drew.
PLOTS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => ({
    title: (gd.layout && gd.layout.title && gd.layout.title.text) || '',
    types: (gd._fullData || []).map(t => t.type),
    names: (gd._fullData || []).map(t => t.name || ''),
    x: (gd._fullData || []).map(t => Array.from(t.x || [])),
    y: (gd._fullData || []).map(t => Array.from(t.y || [])),
    paths: [...gd.querySelectorAll('.scatterlayer .trace path.js-line, .barlayer .point path')]
        .filter(p => (p.getAttribute('d') || '').length > 4).length,
    width: gd.getBoundingClientRect().width,
    height: gd.getBoundingClientRect().height,
}))"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Poll Streamlit's health endpoint until it answers "ok" (or the server dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{log.read_text()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r,
        ):
            if r.status == 200 and r.read().strip() == b"ok":
                return
        time.sleep(0.2)
    raise RuntimeError(f"the app did not answer within {timeout:.0f} s:\n{log.read_text()}")


@contextlib.contextmanager
def serve(runs: Path, log: Path, port: int | None = None) -> Iterator[tuple[str, int, int]]:
    """Run `workbench app --runs RUNS --port PORT` (default host) until the block ends.

    Yields (url, port, pid of the launcher). The launcher runs streamlit as a child, so both run
    in a new session and the whole process group is terminated (then killed) at the end. Without
    a `port`, a free one is picked, and picked again (twice at most) when another process, such
    as a parallel test worker's server, took it before this server bound it.
    """
    for attempt in range(3):
        chosen = port or free_port()
        proc = _start(runs, log, chosen)
        url = f"http://127.0.0.1:{chosen}"
        try:
            wait_healthy(url, proc, log)
        except BaseException:
            stop(proc)
            taken = "is not available" in log.read_text(errors="replace")
            if port is None and attempt < 2 and taken:
                continue  # the port was taken before this server bound it: pick another
            raise
        if _listens(proc, chosen):
            break
        stop(proc)  # the health check was answered by another server on that port
        if port is not None or attempt == 2:
            raise RuntimeError(f"port {chosen} answers, but not from this app:\n{log.read_text()}")
    try:
        yield url, chosen, proc.pid
    finally:
        stop(proc)


def _start(runs: Path, log: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("WORKBENCH_RUNS_DIR", None)  # the launcher sets it from --runs
    command = [sys.executable, "-m", "workbench", "app", "--runs", str(runs), "--port", str(port)]
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _listens(proc: subprocess.Popen, port: int) -> bool:
    """Whether what listens on `port` is `proc` or one of its children (True where this system
    does not let us see other processes' sockets)."""
    import psutil

    try:
        family = {proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))}
        listening = [
            c
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        ]
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return any(c.pid in family for c in listening)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it has not gone in 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # the streamlit child, if it outlived it
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    """A playwright page in headless Debian Chromium (no `playwright install` needed)."""
    from playwright.sync_api import sync_playwright

    if chromium_path() is None:
        raise RuntimeError("no `chromium` on PATH: .ci/run installs it (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def wait_for_charts(page, n_charts: int, timeout_ms: int = 30_000) -> list[dict]:
    """Wait until `n_charts` plotly charts have drawn at least one trace each; their data."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            f"() => {{ const plots = ({PLOTS_JS})();"
            f" return plots.length >= {n_charts} && plots.every(p => p.paths > 0); }}",
            timeout=timeout_ms,
        )
    except PlaywrightTimeout:
        drawn = [
            {"title": p["title"], "traces": len(p["types"]), "paths": p["paths"]}
            for p in page.evaluate(PLOTS_JS)
        ]
        errors = page.locator('[data-testid="stException"]').all_inner_texts()
        raise AssertionError(
            f"expected {n_charts} plotly charts with drawn traces within {timeout_ms} ms; "
            f"the page has {drawn}; Streamlit exceptions: {errors}"
        ) from None
    # Streamlit may still be running the script; wait until it reports it has stopped
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"] button')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText"
        ".includes('Stop')",
        timeout=timeout_ms,
    )
    return page.evaluate(PLOTS_JS)


def full_page_screenshot(page, path: Path) -> Path:
    """Screenshot of the whole app: Streamlit scrolls inside its own container, so the viewport
    is grown to the content's height first (and the charts get a moment to re-lay out)."""
    height = page.evaluate(
        """() => Math.max(document.body.scrollHeight,
            ...[...document.querySelectorAll(
                '[data-testid="stMain"], [data-testid="stAppViewContainer"], section.main'
            )].map(e => e.scrollHeight))"""
    )
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": min(int(height) + 40, 6000)})
    page.wait_for_timeout(500)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
    return path


def needs_chromium(test):
    """Mark a test that opens the app in Chromium: skipped without chromium, except under CI,
    where `browser_page` then fails saying .ci/run must install it (the AppTest parts of the same
    module still run)."""
    import pytest

    return pytest.mark.skipif(
        chromium_path() is None and not os.environ.get("CI"),
        reason="no chromium on PATH (set CI to make this an error)",
    )(test)


def require_chromium() -> None:
    """Skip the calling test module when there is no chromium, except under CI, where a missing
    chromium is an error (.ci/run must install it)."""
    import pytest

    if chromium_path() is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI is set but no `chromium` is on PATH: .ci/run must install it")
        pytest.skip("no chromium on PATH (set CI to make this an error)", allow_module_level=True)


def shots_dir(tmp_path: Path) -> Path:
    """Where the browser tests leave their page screenshots: $WORKBENCH_SCREENSHOTS (`make test`
    sets build/screenshots), else the test's tmp dir."""
    return Path(os.environ.get("WORKBENCH_SCREENSHOTS", tmp_path))


@contextlib.contextmanager
def rendered_page(
    runs: Path, path: str, n_charts: int, shot_name: str, tmp_path: Path, timeout_ms: int = 120_000
) -> Iterator[tuple[Any, str]]:
    """Serve `runs`, open `path` (page and query) in Chromium, wait for `n_charts` plotly charts,
    check that no Streamlit exception shows, and yield (page, the main area's text) for the test's
    own checks; afterwards take a full-page screenshot `shot_name` (into $WORKBENCH_SCREENSHOTS
    or `tmp_path`) and check it is not blank."""
    shots = shots_dir(tmp_path)
    with serve(runs, tmp_path / "server.log") as (url, _port, _pid), browser_page() as page:
        page.goto(f"{url}/{path}")
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_charts}",
            timeout=timeout_ms,
        )
        page.wait_for_timeout(1000)
        errors = page.locator('[data-testid="stException"]')
        assert errors.count() == 0, errors.first.inner_text()
        yield page, page.locator('[data-testid="stMain"]').inner_text()
        shot = full_page_screenshot(page, shots / shot_name)
    assert shot.stat().st_size > 20_000, f"{shot} looks blank"


def main(argv: list[str]) -> int:
    runs, out = Path(argv[0]), Path(argv[1])
    query = argv[2] if len(argv) > 2 else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".server.log")
    with serve(runs, log) as (url, _port, _pid), browser_page() as page:
        page.goto(f"{url}/?{query}" if query else url)
        plots = wait_for_charts(page, 2)
        errors = page.locator('[data-testid="stException"]').count()
        full_page_screenshot(page, out)
    for plot in plots:
        print(f"chart {plot['title']!r}: {len(plot['types'])} traces, {plot['paths']} paths")
    print(f"exceptions on the page: {errors}; screenshot: {out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
