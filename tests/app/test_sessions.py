"""Sessions of the web app never affect each other.

The pages cache their model with `st.cache_resource`, so every browser session of a page computes
on one shared `ModelHandle`. A steering (or splice) in one session must never change what another
session computes, and every forward pass on the shared handle must hold the handle's lock (hooks
are per-module state: a pass that does not hold the lock runs under whatever edits another session
has installed at that moment).

- Python level (fast, deterministic): threads share one handle of the quick zoo's toy-lm, loaded
  as the pages load it; one thread holds a steering block (the Steering page's code path) while
  the other runs the Model page's analyses, or the Steering page itself (AppTest).
- Browser level: two (three) concurrent Chromium sessions against a real `workbench app`.

Note: the Model page and the Steering page each have their own cached `load` (st.cache_resource
keys a function by its source), so in the real app their handles are distinct; sessions of the
*same* page share one. The AppTest test below makes both pages share one handle on purpose.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import streamlit as st
import torch
from app_browser import CHROMIUM_ARGS, chromium_path, needs_chromium, serve
from streamlit.testing.v1 import AppTest

import analyses.logit_lens.api as lens_module
from analyses.logit_lens.api import layer_norms, logit_lens
from analyses.steering import SteeringVector, generate, steer
from workbench import zoo

PAGES = Path(__file__).resolve().parents[2] / "app" / "pages"
MODEL_PAGE = str(PAGES / "1_Model.py")
STEERING_PAGE = str(PAGES / "9_Steering.py")
PROMPT = "the big dog ran ."
PROMPTS = ["the dog", "our soup", "the coach"]  # the Steering page's default prompts
SITE = "blocks.1.hook_resid_pre"  # a site the Steering page offers
COEFF = 12.0  # the Steering page's largest coefficient
WAIT = 60.0  # seconds: a safety net only; nothing below sleeps


@pytest.fixture(scope="module")
def toy_lm(quick_zoo):
    """The quick zoo's toy-lm, loaded as the pages load it (last checkpoint, device="auto")."""
    series = zoo.load_series("toy-lm", str(quick_zoo))
    return series.load(series.steps[-1], device="auto")


def vector(handle, seed: int, site: str = SITE) -> SteeringVector:
    """A random direction of norm 10 * sqrt(d) at `site`: large enough to change every output."""
    gen = torch.Generator().manual_seed(seed)
    width = handle.model.cfg.d_model
    v = torch.randn(width, generator=gen)
    return SteeringVector(v * (10 * width**0.5 / float(v.norm())), site, "test")


class SpyLock:
    """A stand-in for `handle.lock`: a real RLock that also records which threads had to wait."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition()
        self.waited: set[int] = set()
        self.unlocked_forwards: list[str] = []  # threads that ran a forward pass without it

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        with self._changed:
            self.waited.add(threading.get_ident())
            self._changed.notify_all()
        return self._lock.acquire(True, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def held_here(self) -> bool:
        return self._lock._is_owned()  # type: ignore[attr-defined]

    def wait_for_waiters(self, n: int, timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.waited) >= n, timeout)


@pytest.fixture
def spy(toy_lm, monkeypatch):
    """Install a SpyLock on the shared handle and a hook that records every forward pass run by a
    thread that does not hold it (the invariant: hooked forwards take the model's lock)."""
    lock = SpyLock()
    monkeypatch.setattr(toy_lm, "lock", lock)

    def check(module, args, output):
        if not lock.held_here():
            lock.unlocked_forwards.append(threading.current_thread().name)

    hook = toy_lm.site_modules["hook_embed"].register_forward_hook(check)
    yield lock
    hook.remove()


def tokens(handle, steering: SteeringVector | None, coeff: float = COEFF) -> torch.Tensor:
    """The Steering page's generation (its code path: analyses.steering.generate)."""
    return generate(handle, PROMPTS, steering, coeff, where="all", max_new_tokens=12)[1]


# -- Python level -----------------------------------------------------------------------------


def test_model_page_analyses_ignore_a_steering_thread(toy_lm, spy):
    """The Model page's norms and logit lens, computed while another thread steers the same handle
    (held block first, then both looping freely), equal the unsteered baseline exactly."""
    norms0, lens0 = layer_norms(toy_lm, PROMPT), logit_lens(toy_lm, PROMPT)
    plain = tokens(toy_lm, None)
    push = vector(toy_lm, 0)
    steered0 = tokens(toy_lm, push)
    assert not torch.equal(steered0, plain)  # the steering really changes the generations
    spy.unlocked_forwards.clear()  # (the unsteered `plain` above ran without the lock)
    results, errors = [], []

    def model_session(rounds: int, start: threading.Barrier | None = None) -> None:
        try:
            if start is not None:
                start.wait(WAIT)
            for _ in range(rounds):
                results.append((layer_norms(toy_lm, PROMPT), logit_lens(toy_lm, PROMPT)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    # 1. deterministic overlap: this thread holds the lock; the Model session must wait for it
    # while this thread steers, and then compute clean.
    other = threading.Thread(target=model_session, args=(1,), name="model-session")
    with toy_lm.lock:
        other.start()
        assert spy.wait_for_waiters(1), "the Model session never waited for the model's lock"
        assert torch.equal(tokens(toy_lm, push), steered0)
    other.join(WAIT)

    # 2. free-running: both sessions loop at once
    start = threading.Barrier(2)
    other = threading.Thread(target=model_session, args=(4, start), name="model-session")
    other.start()
    start.wait(WAIT)
    steered = [tokens(toy_lm, push) for _ in range(4)]
    other.join(WAIT)

    assert not errors, errors
    assert len(results) == 5
    for norms, lens in results:
        assert norms.equals(norms0)
        assert lens.equals(lens0)
    assert all(torch.equal(t, steered0) for t in steered)
    assert spy.unlocked_forwards == []
    assert torch.equal(tokens(toy_lm, None), plain)  # and nothing is left behind


def test_logit_lens_ignores_an_edit_at_the_final_norm(toy_lm, spy, monkeypatch):
    """Another thread steers at ln_final.hook_in (a saved vector may sit at any site) exactly
    between the lens's capture and its unembedding: the lens must not change."""
    lens0 = logit_lens(toy_lm, PROMPT)
    captured, inside = threading.Event(), threading.Event()
    real_capture = lens_module.capture
    me = threading.get_ident()

    def capture_then_pause(*args, **kwargs):
        out = real_capture(*args, **kwargs)
        captured.set()
        # let the steering thread in (or, where logit_lens holds the lock, see it wait for it)
        with spy._changed:
            spy._changed.wait_for(lambda: inside.is_set() or me in spy.waited, WAIT)
        return out

    monkeypatch.setattr(lens_module, "capture", capture_then_pause)
    seen = {}
    other = threading.Thread(target=lambda: seen.update(lens=logit_lens(toy_lm, PROMPT)))
    other.start()
    assert captured.wait(WAIT)
    with steer(toy_lm, vector(toy_lm, 1, "ln_final.hook_in"), COEFF):
        inside.set()
        with spy._changed:
            spy._changed.notify_all()
        other.join(WAIT)
    assert seen["lens"].equals(lens0)


class PageSession:
    """One AppTest session of a page whose cached `load` returns the shared handle."""

    def __init__(self, page: str, **query: str) -> None:
        self.at = AppTest.from_file(page, default_timeout=WAIT)
        for key, value in query.items():
            self.at.query_params[key] = value

    def run(self) -> PageSession:
        self.at.run()
        assert not self.at.exception, "\n".join(e.value for e in self.at.exception)
        return self

    def shown(self) -> list:
        """What the page shows: its dataframes' records and its plotly figures' specs."""
        frames = [df.value.to_dict("records") for df in self.at.dataframe]
        return frames + [json.loads(c.proto.spec) for c in self.at.get("plotly_chart")]


def test_page_sessions_wait_while_another_session_steers(
    toy_lm, spy, runs_dir, quick_zoo, monkeypatch
):
    """The Steering page (with its own steering) and the Model page, run by AppTest on the handle
    another session is steering with: both wait for it and show exactly their solo output."""
    monkeypatch.setenv(zoo.ZOO_ENV, str(quick_zoo))
    # What st.cache_resource gives every session in the app: one handle. Both pages' `load` call
    # workbench.zoo.load_series, so both pages get this one.
    series = SimpleNamespace(steps=[0], load=lambda step, device="auto": toy_lm)
    monkeypatch.setattr(zoo, "load_series", lambda name, root: series)
    st.cache_resource.clear()
    vector(toy_lm, 2).save(runs_dir / "vectors" / "mine.safetensors")
    pages = {
        "steering": (STEERING_PAGE, {"direction": "saved: vectors/mine.safetensors", "coeff": "4"}),
        "model": (MODEL_PAGE, {"model": "toy-lm", "prompt": PROMPT}),
    }
    try:
        solo = {name: PageSession(page, **q).run().shown() for name, (page, q) in pages.items()}
        table = solo["steering"][0]
        assert [r["unsteered"] for r in table] != [r["steered"] for r in table]
        plain, push = tokens(toy_lm, None), vector(toy_lm, 0)
        spy.unlocked_forwards.clear()  # (`plain` ran without the lock; the pages must not)
        for name, (page, query) in pages.items():
            session, errors = PageSession(page, **query), []

            def other_session(session=session, errors=errors) -> None:
                try:
                    session.run()
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            spy.waited.clear()
            thread = threading.Thread(target=other_session, name=f"{name}-session")
            with steer(toy_lm, push, COEFF, where="all"):  # another session steering
                thread.start()
                assert spy.wait_for_waiters(1), f"the {name} page never waited for the lock"
                steered = toy_lm.generate(PROMPTS, max_new_tokens=12)
            thread.join(WAIT)
            assert not errors, errors
            assert not torch.equal(steered, plain)  # the steering was on while it waited
            assert session.shown() == solo[name], f"the {name} page saw the other's steering"
        assert spy.unlocked_forwards == [], "forward passes ran without the model's lock"
    finally:
        st.cache_resource.clear()


# -- browser level ----------------------------------------------------------------------------

TABLE_JS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"] tr[role="row"]')]
    .map(row => [...row.querySelectorAll('td[role="gridcell"]')].map(td => td.textContent))
    .filter(cells => cells.length)"""
HEATMAPS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd =>
    JSON.stringify((gd._fullData || []).map(t => ({
        x: Array.from(t.x || []), y: Array.from(t.y || []),
        z: Array.from(t.z || []).map(row => Array.from(row)), text: t.text || null}))))"""
DONE_JS = """(text) => {
    const main = document.querySelector('[data-testid="stMain"]');
    const status = document.querySelector('[data-testid="stStatusWidget"]');
    return main && main.innerText.includes(text)
        && !(status && /Running|Stop/.test(status.innerText)); }"""


async def load(page, url: str, done: str, timeout_ms: int = 60_000) -> None:
    """Open `url` (a new session) and wait until its script has run to the end: `done` shows."""
    await page.goto(url)
    await page.wait_for_function(DONE_JS, arg=done, timeout=timeout_ms)
    errors = page.locator('[data-testid="stException"]')
    if await errors.count():
        raise AssertionError(await errors.first.inner_text())


async def steering_table(page, url: str) -> list[list[str]]:
    await load(page, url, "No saved sweep")
    # the grid draws on a canvas; its accessible <table> (read here) fills in a moment later
    await page.wait_for_function(f"() => ({TABLE_JS})().length >= {len(PROMPTS)}", timeout=30_000)
    table = await page.evaluate(TABLE_JS)
    assert len(table) == len(PROMPTS), table
    return table


async def model_numbers(page, url: str) -> list[str]:
    await load(page, url, "Cell text")
    await page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(gd => (gd._fullData || []).length).length >= 2",
        timeout=30_000,
    )
    numbers = await page.evaluate(HEATMAPS_JS)
    assert len(numbers) == 2 and all('"z":[[' in n for n in numbers), numbers
    return numbers


async def two_sessions(url: str, rounds: int) -> dict:
    from playwright.async_api import async_playwright

    steer_a = f"{url}/Steering?direction=saved:+vectors/push.safetensors&coeff={COEFF:g}"
    steer_b = f"{url}/Steering?direction=saved:+vectors/push.safetensors&coeff=0"
    model_b = f"{url}/Model?model=toy-lm&prompt={PROMPT.replace(' ', '+')}"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            # three pages: three Streamlit sessions (each page load starts a new one)
            a, b, b2 = [await browser.new_page() for _ in range(3)]
            # baselines, one session at a time: no steering is happening during B's loads
            base = {
                "model": await model_numbers(b, model_b),
                "steering": await steering_table(b2, steer_b),
                "steered": await steering_table(a, steer_a),
            }

            async def loop(fn, page, target, n):
                shown, spans = [], []
                for _ in range(n):
                    start = time.monotonic()
                    shown.append(await fn(page, target))
                    spans.append((start, time.monotonic()))
                return shown, spans

            # then all three at once, each loading its page again and again
            runs = await asyncio.gather(
                loop(steering_table, a, steer_a, rounds + 1),
                loop(model_numbers, b, model_b, rounds),
                loop(steering_table, b2, steer_b, rounds),
            )
            return {**base, "runs": runs}
        finally:
            await browser.close()


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_two_browser_sessions_never_see_each_others_steering(
    toy_lm, tmp_path, monkeypatch, quick_zoo
):
    """Session A steers with coefficient 12 on the Steering page, over and over, while session B
    loads the Model page for a fixed prompt (and a second Steering session B2 generates at
    coefficient 0, i.e. unsteered, on the handle A steers): every load of B and B2 shows exactly
    what it showed alone, and A's steering does change A's generations."""
    monkeypatch.setenv(zoo.ZOO_ENV, str(quick_zoo))  # inherited by the server
    runs = tmp_path / "runs"
    vector(toy_lm, 0).save(runs / "vectors" / "push.safetensors")
    with serve(runs, tmp_path / "server.log") as (url, _port, _pid):
        got = asyncio.run(two_sessions(url, rounds=3))
    (steered, a_spans), (models, b_spans), (steerings, b2_spans) = got["runs"]

    def overlap(xs, ys):
        return sum(max(0.0, min(x1, y1) - max(x0, y0)) for x0, x1 in xs for y0, y1 in ys)

    assert overlap(a_spans, b_spans) > 1.0 and overlap(a_spans, b2_spans) > 1.0  # really at once
    table = got["steered"]
    assert [row[1] for row in table] != [row[2] for row in table], "A's steering did nothing"
    assert [row[1] for row in table] == [row[1] for row in got["steering"]]
    assert all(t == table for t in steered)
    assert all(m == got["model"] for m in models), "B's numbers changed under A's steering"
    assert all(t == got["steering"] for t in steerings), "B2 computed under A's steering"
