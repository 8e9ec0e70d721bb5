"""`workbench codebook prompt` end to end on a small codebook model of the quick zoo's toy-lm:
the codes each token chose (exactly k per token, the scores the layer computed), their
best-matching topic on reference examples, their logit effects C_j @ W_U, and the bad inputs
(empty prompt, unknown site, code or token out of range, a prompt longer than the context)."""

from __future__ import annotations

import json

import pytest
import torch

from analyses.codebook.model import load_codebook_model
from analyses.codebook.prompt import prompt_view, token_logits
from workbench import zoo
from workbench.cli.main import main

SENTENCE = "in the professional court , he despised their player ."


@pytest.fixture(scope="module")
def codebook(quick_zoo, tmp_path_factory):
    """A toy-lm codebook model (64 codes, k 2, 20 steps) on the quick zoo."""
    out = str(tmp_path_factory.mktemp("prompt-codebook") / "cb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(zoo.ZOO_ENV, str(quick_zoo))
        assert main(["codebook", "train", "--model", "toy-lm", "--n-codes", "64", "--k", "2",
                     "--steps", "20", "--n-train", "64", "--n-eval", "16", "--out", out]) == 0  # fmt: skip
    return out


@pytest.fixture
def quick(quick_zoo, monkeypatch):
    monkeypatch.setenv(zoo.ZOO_ENV, str(quick_zoo))


def test_codes_are_the_layers_choice_and_their_logits_the_code_vectors(codebook, quick):
    handle, books = load_codebook_model(codebook)
    site = books.sites[0]
    view = prompt_view(handle, books, SENTENCE, site, folder="codebooks/cb")
    layer = books.layer(site)
    chosen = layer.last_ids[0]  # the prompt's pass is the last one through the layer
    assert view.acts.shape == (len(SENTENCE.split()) + 1, 64)
    assert ((view.acts > 0).sum(1) == 2).all()  # k codes per token
    for t in range(len(view.tokens.tokens)):
        assert set(view.acts[t].nonzero()[0]) == set(chosen[t].tolist())
    top = view.top_units(3)
    assert view.links[top[0]] == {"page": "Codebooks", "model": "codebooks/cb", "site": site,
                                  "code": top[0]}  # fmt: skip
    detail = token_logits(view, books, handle, site, 4, k=3)
    w_u = handle.model.W_U.detach()
    for row in detail["units"]:
        logits = layer.codebook[row["code"]].detach() @ w_u
        assert row["up"][0][1] == pytest.approx(float(logits.max()), abs=1e-4)
        assert row["down"][0][1] == pytest.approx(float(logits.min()), abs=1e-4)
        assert row["act"] == pytest.approx(float(view.acts[4, row["code"]]))
    assert torch.equal(layer.last_ids[0], chosen)  # reading the logits ran no forward pass


def test_cli_table_json_and_bad_inputs(codebook, quick, capsys):
    capsys.readouterr()
    assert main(["codebook", "prompt", codebook, "--text", SENTENCE, "--n-examples", "40",
                 "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["unit"] == "code" and out["n_units"] == 64 and out["codebook"] == codebook
    assert out["tokens"][1:] == SENTENCE.split()
    labelled = [row for row in out["top"] if "label" in row]
    assert labelled and all(row["label"]["name"] == "topic" for row in labelled)
    assert all(0 < row["label"]["precision"] <= 1 for row in labelled)
    assert all(len(t) == 2 for t in out["per_token"])  # k codes on every token
    assert main(["codebook", "prompt", codebook, "--example", "1", "--code", "7",
                 "--label", "none"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "top codes of the prompt" in table and "example labels" in table
    assert "pushes up:" in table and "best label" not in table  # no labels asked for
    assert any(line.split()[:1] == ["7"] for line in table.splitlines())  # the pinned code
    long = " ".join(["the dog ran ."] * 30)
    assert main(["codebook", "prompt", codebook, "--text", long, "--label", "none"]) == 0
    assert "truncated to its first 64 tokens" in capsys.readouterr().out
    cases = [
        (["--text", ""], "the prompt is empty"),
        (["--text", "the dog", "--site", "blocks.3.hook_resid_post"],
         "no codebook at site 'blocks.3.hook_resid_post'; codebook sites: "),
        (["--text", "the dog", "--code", "64"], "code 64 out of range [0, 64)"),
        (["--text", "the dog", "--token", "-4"], "token -4 out of range"),
    ]  # fmt: skip
    for extra, message in cases:
        assert main(["codebook", "prompt", codebook, "--label", "none", *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra


def test_a_grouped_code_sits_in_its_groups_dims():
    from analyses.codebook.layer import CodebookLayer
    from analyses.codebook.prompt import code_vectors

    layer = CodebookLayer(4, 3, k=1, groups=2)  # codes 0-2 over dims 0-1, codes 3-5 over 2-3
    vectors = code_vectors(layer, [1, 4])
    assert torch.equal(vectors[0, :2], layer.codebook[1].detach())
    assert torch.equal(vectors[1, 2:], layer.codebook[4].detach())
    assert not vectors[0, 2:].any() and not vectors[1, :2].any()
    assert torch.equal(code_vectors(CodebookLayer(4, 3), [2]), CodebookLayer(4, 3).codebook[[2]])
