"""The steering playground in headless Chromium over a quick-built toy-lm and a saved sweep:
generations side by side, the sweep heatmap, dose-response and collateral charts, no exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_browser import browser_page, chromium_path, full_page_screenshot, serve

from workbench import zoo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if chromium_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI is set but no `chromium` is on PATH: .ci/run must install it")
    pytest.skip("no chromium on PATH (set CI to make this an error)", allow_module_level=True)


def test_steering_page(tmp_path, monkeypatch):
    from workbench.steering.recipes import lm_sweep

    root = tmp_path / "zoo"
    zoo.build("toy-lm", root, quick=True)
    monkeypatch.setenv(zoo.ZOO_ENV, str(root))  # inherited by the server
    series = zoo.load_series("toy-lm", root)
    handle = series.load(series.steps[-1], device="cpu")
    sites = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    result, vectors = lm_sweep(
        handle, sites, coeffs=(-4.0, 0.0, 4.0), n_prompts=4, n_extract=40, controls=1,
        max_new_tokens=3,
    )  # fmt: skip
    runs = tmp_path / "runs"
    result.save(runs / "results" / "steering-sweep" / "toy-lm" / "positive-sentiment")
    vectors[sites[0]].save(runs / "vectors" / f"{sites[0]}.safetensors")
    shots = Path(os.environ.get("WORKBENCH_SCREENSHOTS", tmp_path))
    with serve(runs, tmp_path / "server.log") as (url, _port, _pid), browser_page() as page:
        page.goto(f"{url}/Steering?site=blocks.1.hook_resid_pre&coeff=4")
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3",
            timeout=120_000,
        )
        page.wait_for_timeout(1000)
        errors = page.locator('[data-testid="stException"]')
        assert errors.count() == 0, errors.first.inner_text()
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert "Generations at blocks.1.hook_resid_pre, coefficient 4" in text
        assert "Dose-response" in text
        shot = full_page_screenshot(page, shots / "page-steering.png")
    assert shot.stat().st_size > 20_000
