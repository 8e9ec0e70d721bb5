"""The model page (AppTest): per-layer norms and the logit lens on a quick-built zoo LM."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench import zoo

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "1_Model.py")


@pytest.fixture(scope="module")
def zoo_dir(quick_zoo):
    return quick_zoo


def run_page(monkeypatch, zoo_dir, **query) -> AppTest:
    monkeypatch.setenv(zoo.ZOO_ENV, str(zoo_dir))
    at = AppTest.from_file(PAGE, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_causal_lm_shows_norms_and_logit_lens(monkeypatch, zoo_dir):
    at = run_page(monkeypatch, zoo_dir, model="toy-lm", prompt="the big dog ran .")
    assert not at.exception
    assert at.selectbox[0].value == "toy-lm"
    assert [s.value for s in at.subheader] == [
        "Residual-stream norm after each block",
        "Logit lens",
    ]
    assert at.query_params["prompt"] in ("the big dog ran .", ["the big dog ran ."])
    charts = at.get("plotly_chart")
    assert len(charts) == 2


def test_encoder_has_norms_but_no_lens(monkeypatch, zoo_dir):
    at = run_page(monkeypatch, zoo_dir, model="minilm", prompt="Hello world")
    assert not at.exception
    assert len(at.get("plotly_chart")) == 1
    assert any("not a causal language model" in i.value for i in at.info)


def test_only_built_language_models_are_offered(monkeypatch, zoo_dir):
    at = run_page(monkeypatch, zoo_dir)
    assert at.selectbox[0].options == ["toy-lm", "minilm"]
