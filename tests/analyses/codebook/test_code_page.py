"""One code's static HTML page: numbers against planted codes (a code that fires exactly on one
label value, one that fires on half of another's tokens), escaping, and `workbench codebook
code-page` on a small real codebook model of fsm-lm."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analyses.codebook.code_page import code_page, code_report, default_label
from workbench.cli.main import main
from workbench.errors import InputError

N_CODES = 8


class Tokens:
    """A tokenizer stand-in: id i is the token VOCAB[i]."""

    VOCAB = ["a", "b", "<script>", "d", "e", "f"]

    def convert_ids_to_tokens(self, ids):
        return self.VOCAB[ids] if isinstance(ids, int) else [self.VOCAB[i] for i in ids]


@pytest.fixture
def planted():
    """(codes (6, 5, 1), ids (6, 5), labels (6, 5)): code 3 fires exactly where label = 2;
    code 5 on the even examples' label-1 tokens (half of them); code 0 elsewhere; example 5's
    last two positions are padding (-1)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (6, 5))
    labels[0, 0], labels[1, 0] = 2, 1  # both values occur in an even example
    codes = np.where(labels == 2, 3, 0)
    codes[::2][labels[::2] == 1] = 5
    ids = rng.integers(0, len(Tokens.VOCAB), (6, 5))
    ids[labels == 2] = 2  # code 3's tokens are all "<script>"
    codes[5, 3:], labels[5, 3:] = -1, -1
    return codes[..., None], ids, labels


def test_report_against_planted_codes(planted):
    codes, ids, labels = planted
    real = codes[..., 0] >= 0
    report = code_report(codes, ids, 3, Tokens(), N_CODES, labels=labels, label="state")
    n3 = int(((labels == 2) & real).sum())
    assert report["n_fires"] == n3 and report["n_tokens"] == int(real.sum())
    assert report["usage"] == pytest.approx(n3 / real.sum())
    assert report["top_tokens"] == [("<script>", n3)]
    assert report["labels"] == [{"value": 2, "precision": 1.0, "recall": 1.0, "tokens": n3}]
    assert [r["label"] for r in report["best_for"]] == [2]
    assert all(c["token"] == "<script>" for c in report["contexts"])

    half = code_report(codes, ids, 5, Tokens(), N_CODES, labels=labels, label="state")
    ones = (labels == 1) & real
    fired = int(ones[::2].sum())
    assert half["labels"] == [
        {"value": 1, "precision": 1.0, "recall": pytest.approx(fired / ones.sum()), "tokens": fired}
    ]
    usage = np.bincount(codes[real][:, 0], minlength=N_CODES) / real.sum()
    assert half["rank"] == int((usage > usage[5]).sum()) + 1


def test_page_shows_and_escapes(planted):
    codes, ids, labels = planted
    report = code_report(codes, ids, 3, Tokens(), N_CODES, labels=labels, label="<state>")
    page = code_page(report, model="codebooks/<m>", site="blocks.1.hook_resid_post")
    assert "<h1>Code 3</h1>" in page and "site <code>blocks.1.hook_resid_post</code>" in page
    assert f"fires on {report['n_fires']} of {report['n_tokens']} tokens" in page
    assert "<script" not in page and "<state>" not in page and "<m>" not in page
    assert "<mark>&lt;script&gt;</mark>" in page
    assert page.count("<p class='ctx'>") == len(report["contexts"])
    assert "Agreement with the &lt;state&gt; labels" in page
    assert "<tr><td>&lt;state&gt;=2</td><td>1.000</td><td>1.000</td>" in page
    assert "src=" not in page and "<link" not in page  # offline


def test_unlabelled_unused_and_bad_codes(planted):
    codes, ids, labels = planted
    page = code_page(code_report(codes, ids, 7, Tokens(), N_CODES))
    assert "fires on 0 of" in page and "never fires" in page and "Agreement" not in page
    with pytest.raises(InputError, match=r"code 8 out of range \[0, 8\)"):
        code_report(codes, ids, 8, Tokens(), N_CODES)
    with pytest.raises(InputError, match="labels have shape"):
        code_report(codes, ids, 3, Tokens(), N_CODES, labels=labels[:, :4])
    assert default_label("fsm") == "state" and default_label(None) is None


@pytest.mark.slow
def test_cli_code_page(tmp_path, capsys):
    from analyses.codebook.train import TrainConfig, train_codebook_model

    folder = tmp_path / "cb"
    train_codebook_model(
        "fsm-lm", "blocks.1.hook_resid_post", n_codes=64, k=1,
        cfg=TrainConfig(steps=10, trainable="codebooks"), n_train=50, n_eval=10, out=folder,
    )  # fmt: skip
    out = tmp_path / "code.html"
    argv = ["codebook", "code-page", str(folder), "--code", "5", "--n-examples", "40"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] == out.stat().st_size
    page = out.read_text()
    assert "<h1>Code 5</h1>" in page and "site <code>blocks.1.hook_resid_post</code>" in page
    assert "Agreement with the state labels" in page  # fsm: read against the hidden state
    assert main([*argv, "--label", "none", "--out", str(out)]) == 0
    assert "Agreement" not in out.read_text()
    assert main([*argv, "--site", "blocks.0.x", "--out", str(out)]) == 2
    assert "no codebook at site 'blocks.0.x'" in capsys.readouterr().err
