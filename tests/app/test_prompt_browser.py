"""The Prompt page in headless Chromium (issue 24's done-when, seen in a browser): over the SAE
trained with the CLI's defaults on the zoo's toy-lm (`toy_lm_sae`), a grammar-lm sentence about
sports (topic 2) shows, among its five top latents, one whose best-matching label is that topic;
the tokens are coloured, no exception shows; a screenshot `page-prompt.png` is left for people
to look at."""

from __future__ import annotations

import re
import shutil
from urllib.parse import quote

import pytest
from app_browser import browser_page, full_page_screenshot, require_chromium, serve, shots_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_chromium()

SENTENCE = "in the professional court , he despised their player ."
WAIT = "() => document.querySelectorAll('[data-testid=\"stDataFrame\"]').length >= 2"


def test_a_topic_sentence_in_the_browser(toy_lm_sae, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(toy_lm_sae / "sae", runs / "sae" / "toy-lm")  # the app may write beside it
    query = f"kind=SAE&sae=sae/toy-lm&text={quote(SENTENCE)}&token=4"
    with serve(runs, tmp_path / "server.log") as (url, _port, _pid), browser_page(1500) as page:
        page.goto(f"{url}/Prompt?{query}")
        page.wait_for_function(WAIT, timeout=300_000)
        page.wait_for_timeout(2000)
        errors = page.locator('[data-testid="stException"]')
        assert errors.count() == 0, errors.first.inner_text()
        main = page.locator('[data-testid="stMain"]').inner_text()
        legend = page.locator(".prompt-legend span").all_inner_texts()  # the top ten, in order
        assert len(legend) == 10, main[:2000]
        top_five = [re.search(r"\((\S+)=(\d+),", item) for item in legend[:5]]
        labels = [(m.group(1), int(m.group(2))) for m in top_five if m]
        assert any(n in ("topic", "example:topic") and v == 2 for n, v in labels), legend[:5]
        assert "Token 4: 'court'" in main and "pushes up" in main
        shot = full_page_screenshot(page, shots_dir(tmp_path) / "page-prompt.png")
    assert shot.stat().st_size > 20_000
