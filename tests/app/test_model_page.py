"""The model page (AppTest): per-layer norms and the logit lens on a quick-built zoo LM."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_stores import make_store
from streamlit.testing.v1 import AppTest

from workbench import zoo

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "1_Model.py")


@pytest.fixture(scope="module")
def zoo_dir(quick_zoo):
    return quick_zoo


@pytest.fixture(autouse=True)
def _runs(runs_dir):
    """An empty runs dir of its own (not the checkout's `runs/`): the page's default model
    comes from it."""
    return runs_dir


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


def test_without_a_model_in_the_url_the_richest_stores_opens(monkeypatch, zoo_dir, runs_dir):
    make_store(runs_dir, "stores/minilm-text", model="minilm")
    at = run_page(monkeypatch, zoo_dir, prompt="Hello world")
    assert not at.exception
    assert at.selectbox[0].value == "minilm" == at.query_params["model"]  # not the first option
    assert not any("is empty" in i.value for i in at.info)  # a store: not empty
