"""The web app under load, in headless Chromium: first render of every page on the demo data, a
second visit from a fresh session (Streamlit's caches warm: ratio second / first), and the median
page-load time with 1 and with 10 concurrent browser sessions, failing loudly if any page shows
an exception.

Run from the repository root after `workbench demo` (or point --runs at any runs directory)::

    python benchmarks/bench_app.py                  # 388 s on 2 cores (2026-11-23)
    python benchmarks/bench_app.py --sessions 4 --rounds 1

A page counts as loaded when it shows at least one drawn plotly chart and Streamlit reports that
its script has stopped running. The server is `workbench app` on 127.0.0.1, started fresh here, so
the first visit pays every cold cache; each session is its own browser context (own cookies,
own Streamlit session). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "app"))

from app_browser import CHROMIUM_ARGS, chromium_path, serve  # noqa: E402

PAGES = [
    ("Home", ""),
    ("Overview", "Overview"),
    ("Model", "Model"),
    ("Geometry", "Geometry"),
    ("Landscape", "Landscape"),
    ("Similarity", "Similarity"),
    ("Collapse and probes", "Collapse_and_probes"),
    ("Massive", "Massive"),
    ("SAE features", "SAE_features"),
    ("Steering", "Steering"),
    ("Codebooks", "Codebooks"),
    ("Batch", "Batch"),
    ("Explore", "Explore"),
    ("Jobs", "Jobs"),
    ("Upload", "Upload"),
]
#: pages with no chart to wait for: loaded when this element is drawn (and the script stopped)
NO_CHART = {"Jobs": '[data-testid="stTabs"]', "Upload": '[data-testid="stFileUploader"]'}
#: the pages each concurrent session visits, in order
LOAD_PAGES = ["Overview", "Geometry", "Similarity", "Batch"]

READY_JS = """(drawn) => document.querySelectorAll(drawn).length >= 1
    && !(document.querySelector('[data-testid="stStatusWidget"]')?.innerText || '')
        .match(/Stop|Running/)"""
CHART = ".js-plotly-plot .main-svg"


async def load(context, url: str, path: str, timeout_ms: int = 90_000) -> float:
    """Seconds from navigation to a loaded page; raises if the page shows an exception."""
    page = await context.new_page()
    start = time.perf_counter()
    await page.goto(f"{url}/{path}")
    try:
        drawn = NO_CHART.get(dict((p, n) for n, p in PAGES).get(path, ""), CHART)
        await page.wait_for_function(READY_JS, arg=drawn, timeout=timeout_ms)
    except Exception as err:  # keep what the page showed, for whoever reads the failure
        shot = Path(f"/tmp/bench_app_{path or 'Home'}.png")
        await page.screenshot(path=str(shot), full_page=True)
        raise RuntimeError(f"page {path or 'Home'} did not load ({err}); see {shot}") from None
    seconds = time.perf_counter() - start
    errors = await page.locator('[data-testid="stException"]').all_inner_texts()
    await page.close()
    if errors:
        raise RuntimeError(f"page {path or 'Home'} shows an exception: {errors[0][:300]}")
    return seconds


async def selection_seconds(browser, url: str, store: str, repeats: int) -> list[float]:
    """Seconds from releasing a box selection on the Explore map to the updated panels (the
    selection's subheader shows a new count and its charts are drawn), one per repeat; each
    repeat selects a different vertical band of the map."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(f"{url}/Explore?store={store}&color=(none)")
    await page.wait_for_function(READY_JS, arg=CHART, timeout=120_000)
    out = []
    for i in range(repeats):
        layer = await page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        before = await page.locator("h3").filter(has_text="Selection:").all_inner_texts()
        x0 = layer["x"] + layer["width"] * (0.1 + 0.15 * (i % 5))
        await page.mouse.move(x0, layer["y"] + 2)
        await page.mouse.down()
        for t in range(1, 8):
            await page.mouse.move(
                x0 + layer["width"] * 0.2 * t / 7, layer["y"] + layer["height"] * t / 7 - 2
            )
        start = time.perf_counter()
        await page.mouse.up()
        await page.wait_for_function(
            """before => {
                const h = [...document.querySelectorAll('h3')].find(e => e.innerText.startsWith('Selection:'));
                return h && h.innerText !== before && document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2
                    && !(document.querySelector('[data-testid="stStatusWidget"]')?.innerText || '').match(/Stop|Running/);
            }""",
            arg=before[0] if before else "",
            timeout=120_000,
        )
        out.append(time.perf_counter() - start)
    await context.close()
    return out


async def session(browser, url: str, paths: list[str]) -> list[float]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        return [await load(context, url, path) for path in paths]
    finally:
        await context.close()


async def run(runs: Path, sessions: int, rounds: int, store: str) -> dict:
    from playwright.async_api import async_playwright

    log = Path("/tmp/bench_app_server.log")
    out: dict = {}
    with serve(runs, log) as (url, _port, _pid):
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            paths = [path for _name, path in PAGES]
            out["first"] = await session(browser, url, paths)  # cold: a fresh server
            out["second"] = await session(browser, url, paths)  # a new session, caches warm
            out["selection"] = await selection_seconds(browser, url, store, repeats=5)
            load_paths = [dict(PAGES)[name] for name in LOAD_PAGES]
            single, many = [], []
            for _ in range(rounds):
                single += await session(browser, url, load_paths)
                start = time.perf_counter()
                results = await asyncio.gather(
                    *(session(browser, url, load_paths) for _ in range(sessions))
                )
                out.setdefault("many_wall", []).append(time.perf_counter() - start)
                many += [t for r in results for t in r]
            out["single"], out["many"] = single, many
            await browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/demo", help="runs directory (after workbench demo)")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--store", default="stores/toy-lm", help="store the Explore timing maps")
    parser.add_argument("--rounds", type=int, default=2, help="repeats of the 1 vs N comparison")
    args = parser.parse_args()
    if chromium_path() is None:
        print("no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    runs = Path(args.runs).resolve()
    if not (runs / "stores").is_dir():
        print(f"{runs} holds no demo data: run `workbench demo` first", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = asyncio.run(run(runs, args.sessions, args.rounds, args.store))
    print(
        f"bench_app on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; runs {runs}; "
        f"load average {load_before:.2f} before; whole run {time.perf_counter() - started:.0f} s\n"
    )
    print("| page | first render (cold server) | second visit (new session) | second / first |")
    print("|---|---|---|---|")
    for (name, _path), first, second in zip(PAGES, result["first"], result["second"], strict=True):
        print(f"| {name} | {first:.2f} s | {second:.2f} s | {second / first:.2f} |")
    first_median = statistics.median(result["first"])
    second_median = statistics.median(result["second"])
    print(
        f"| **median** | **{first_median:.2f} s** | **{second_median:.2f} s** | "
        f"**{second_median / first_median:.2f}** |\n"
    )
    picks = result["selection"]
    print(
        f"Selection to updated panels (Explore, {args.store}, last site, 2000 points, "
        f"{len(picks)} box selections): median {statistics.median(picks):.2f} s, "
        f"slowest {max(picks):.2f} s\n"
    )
    single = statistics.median(result["single"])
    many = statistics.median(result["many"])
    print("| sessions at once | page loads | median page load | slowest |")
    print("|---|---|---|---|")
    print(f"| 1 | {len(result['single'])} | {single:.2f} s | {max(result['single']):.2f} s |")
    print(
        f"| {args.sessions} | {len(result['many'])} | {many:.2f} s | {max(result['many']):.2f} s |"
    )
    print(
        f"\nPages per session: {', '.join(LOAD_PAGES)}; {args.rounds} round(s); "
        f"{args.sessions} sessions at once: median {many / single:.2f}x the single-session median; "
        f"no page showed an exception."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
