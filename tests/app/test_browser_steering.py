"""The steering playground in headless Chromium over a quick-built toy-lm and a saved sweep:
generations side by side, the sweep heatmap, dose-response and collateral charts, no exception."""

from __future__ import annotations

import pytest
from app_browser import rendered_page, require_chromium

from workbench import zoo

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_chromium()


def test_steering_page(tmp_path, monkeypatch, quick_zoo):
    from analyses.steering.recipes import lm_sweep

    root = quick_zoo
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
    path = "Steering?site=blocks.1.hook_resid_pre&coeff=4"
    with rendered_page(runs, path, 3, "page-steering.png", tmp_path) as (page, text):
        assert "Generations at blocks.1.hook_resid_pre, coefficient 4" in text
        assert "Dose-response" in text
        # a steering run from the browser: move the coefficient one notch down with the keyboard;
        # the generations are made again at the new coefficient, and the URL keeps it
        thumb = page.get_by_role("slider", name="Coefficient")
        thumb.focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("() => location.search.includes('coeff=3.5')", timeout=30_000)
        page.get_by_text("Generations at blocks.1.hook_resid_pre, coefficient 3.5").wait_for(
            timeout=60_000
        )
        assert page.locator('[data-testid="stException"]').count() == 0
