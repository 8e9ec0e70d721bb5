"""The Prompt page (AppTest) over a runs dir holding an SAE with its feature report and a
codebook model, both of the quick zoo's toy-lm (made through the CLI): the coloured tokens, the
top units' table with links to their pages, a token's units with their logits, the view's state
in the URL; and the bad inputs (a site the SAE was not trained on, an empty prompt, a prompt
longer than the context) as messages with the pickers still there."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench import zoo
from workbench.cli.main import main
from workbench_app.services.runsdir import RUNS_ENV

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "8_Prompt.py")
SITE = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def runs(quick_zoo, small_toy_sae, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("prompt-runs")
    small_toy_sae(runs / "stores" / "toy-lm", runs / "sae" / "toy", SITE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(zoo.ZOO_ENV, str(quick_zoo))
        for argv in (
            ["codebook", "train", "--model", "toy-lm", "--n-codes", "64", "--k", "2", "--steps",
             "10", "--n-train", "32", "--n-eval", "8", "--out", str(runs / "codebooks" / "toy")],
        ):  # fmt: skip
            assert main(argv) == 0, argv
    return runs


@pytest.fixture
def app(runs, quick_zoo, monkeypatch):
    monkeypatch.setenv(zoo.ZOO_ENV, str(quick_zoo))
    monkeypatch.setenv(RUNS_ENV, str(runs))

    def make(**params: str) -> AppTest:
        at = AppTest.from_file(PAGE, default_timeout=300)
        for key, value in params.items():
            at.query_params[key] = value
        return at.run()

    return make


def _pickers_stay(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert {"SAE", "Model", "Site"} <= {s.label for s in at.selectbox}


def test_an_sae_reads_a_prompt(app):
    at = app(text="in the professional court , he despised their player .", token="4")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    top, detail = at.dataframe[0].value, at.dataframe[1].value
    assert top["page"].str.startswith("SAE_features?features=sae/toy/features&latent=").all()
    assert [f"SAE_features?features=sae/toy/features&latent={j}" for j in top.latent] == list(
        top["page"]
    )
    assert "4:court" in top.columns and top["best label"].notna().any()
    assert len(detail) > 0 and detail["pushes up"].str.len().gt(0).all()
    params = dict(at.query_params)
    assert params["kind"] == "SAE" and params["sae"] == "sae/toy" and params["site"] == SITE
    assert params["token"] == "4" and params["model"].startswith("toy-lm@")
    assert any("court" in h.value for h in at.get("html"))


def test_bad_inputs_leave_the_page_usable(app):
    at = app(site="blocks.2.hook_resid_post", text="the dog")
    _pickers_stay(at)
    assert [e.value for e in at.error] == [
        f"the SAE was trained on site '{SITE}', not 'blocks.2.hook_resid_post': read the "
        f"prompt at '{SITE}'"
    ]
    at = app(text="the dog ran .", token="40")
    _pickers_stay(at)
    assert at.warning[0].value.startswith("token 40 is out of range: the prompt has 5 tokens")
    assert not at.error and len(at.dataframe) == 2
    at = app(text="   ")
    _pickers_stay(at)
    assert "the prompt is empty" in at.error[0].value
    at = app(text=" ".join(["the dog ran ."] * 30))
    _pickers_stay(at)
    assert "truncated to its first 64 tokens" in at.warning[0].value
    assert not at.error and len(at.dataframe) == 2


def test_a_codebook_and_a_dataset_example(app):
    at = app(kind="Codebook", source="dataset example", example="3")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    top = at.dataframe[0].value
    assert top["page"].str.startswith("Codebooks?model=codebooks/toy&site=").all()
    assert any("example 3:" in c.value for c in at.caption)
    assert dict(at.query_params)["codebook"] == "codebooks/toy"


def test_the_sae_features_and_codebooks_pages_link_here(runs, quick_zoo, monkeypatch):
    monkeypatch.setenv(zoo.ZOO_ENV, str(quick_zoo))
    monkeypatch.setenv(RUNS_ENV, str(runs))
    pages = Path(PAGE).parent
    for page, link in (
        ("7_SAE_features.py", "(Prompt?kind=SAE&sae=sae/toy)"),
        ("10_Codebooks.py", f"(Prompt?kind=Codebook&codebook=codebooks/toy&site={SITE})"),
    ):
        at = AppTest.from_file(str(pages / page), default_timeout=300).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(link in m.value for m in at.markdown), page
