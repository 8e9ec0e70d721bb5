"""The Codebooks page in headless Chromium over a small fsm-lm codebook model saved in the runs
directory: statistics per layer, usage and purity charts, top contexts, steering; no exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_browser import needs_chromium, rendered_page
from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parents[2] / "app" / "pages" / "10_Codebooks.py"


def _trained(runs: Path) -> Path:
    from analyses.codebook.train import TrainConfig, train_codebook_model

    out = runs / "codebooks" / "fsm-lm"
    train_codebook_model(
        "fsm-lm", "blocks.*.hook_resid_post", n_codes=128, k=1,
        cfg=TrainConfig(steps=20, trainable="all"), n_train=100, n_eval=20,
        out=out,
    )  # fmt: skip
    return out


def test_page_without_models_says_how_to_make_one(runs_dir) -> None:
    (runs_dir / "notes.txt").write_text("not a codebook")  # not empty: the page's own message
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert "No saved codebook model" in at.info[0].value


@pytest.mark.slow
def test_page_apptest(runs_dir) -> None:
    _trained(runs_dir)
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.query_params["model"] = "codebooks/fsm-lm"
    at.query_params["code"] = "7"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    headers = [h.value for h in at.subheader]
    assert "Top contexts of code 7" in " ".join(headers)
    assert any(h.startswith("Purity: best code per state") for h in headers)


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_codebook_page(tmp_path):
    runs = tmp_path / "runs"
    _trained(runs)
    path = "Codebooks?model=codebooks/fsm-lm&site=blocks.1.hook_resid_post&code=5"
    with rendered_page(runs, path, 2, "page-codebooks.png", tmp_path) as (_page, text):
        assert "Code statistics per layer" in text
        assert "blocks.0.hook_resid_post" in text
        assert "Purity: best code per state" in text
        assert "Top contexts of code 5" in text
        assert "code 5 forced" in text
