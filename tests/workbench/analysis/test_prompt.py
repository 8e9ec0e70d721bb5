"""The prompt-centric view's shared pieces (`workbench.analysis.prompt`) and the SAE's view of
a prompt (`analyses.sae.prompt.prompt_view`) against planted ground truth: the identity SAE
(latent j = relu(x_j), decoder row j = e_j) on a small GPT-NeoX, so that every activation and
every logit effect is known; ranking, truncation and the bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.sae import identity_sae
from analyses.sae.prompt import prompt_view, token_logits
from workbench.analysis.prompt import (
    PromptTokens,
    PromptUnits,
    default_token,
    logit_effects,
    prompt_text,
    prompt_tokens,
    text_report,
    token_detail,
    unembedding,
)
from workbench.errors import InputError
from workbench.hooks.capture import capture

SITE = "blocks.1.hook_resid_post"


def _units(acts, special=(), scale=None) -> PromptUnits:
    tokens = [f"t{i}" for i in range(len(acts))]
    ptoks = PromptTokens("x", torch.zeros(1, len(acts)), tokens, special=list(special))
    return PromptUnits(ptoks, np.asarray(acts, float), "latent", scale=scale)


def test_ranking_skips_special_tokens_and_reads_the_scale():
    acts = [[9.0, 0.0, 0.0], [1.0, 2.0, 0.5], [0.0, 1.0, 0.4]]
    assert _units(acts).top_units() == [0, 1, 2]
    assert _units(acts, special=[0]).top_units() == [1, 0, 2]  # the BOS's 9 is not ranked
    # over each latent's own max: latent 2 at 0.5 of 0.5 outranks latent 1 at 2 of 8
    view = _units(acts, special=[0], scale=np.array([10.0, 8.0, 0.5]))
    assert view.top_units(2) == [2, 1]
    assert view.token_units(1, 2) == [(1, 2.0), (0, 1.0)]
    assert _units([[0.0, 0.0]]).top_units() == []
    assert default_token(_units(acts, special=[0])) == 1  # latent 1 peaks there, not at the BOS
    assert default_token(_units([[0.0], [0.0]])) == 1  # nothing fires: the last token


def test_a_model_without_an_unembedding_says_so():
    from types import SimpleNamespace

    bert = SimpleNamespace(
        model=SimpleNamespace(cfg=SimpleNamespace(architecture="BertModel"), W_U=None),
        info=SimpleNamespace(name="minilm"),
    )
    w_u, why = unembedding(bert)
    assert w_u is None and "model 'minilm' has no unembedding W_U" in why
    view = _units([[1.0, 2.0]])
    detail = token_detail(view, 0, lambda js: torch.eye(2)[js], w_u, str, why_not=why)
    assert detail["no_logits"] == why and [u["latent"] for u in detail["units"]] == [1, 0]
    assert "up" not in detail["units"][0] and why in text_report(view, detail=detail)


def test_table_dict_report_and_pins():
    view = _units([[0.0, 3.0, 0.0], [1.0, 0.0, 0.0]])
    view.labels = {1: {"label": "topic=2", "precision": 0.9, "recall": 0.5}}
    view.pinned = [2]
    frame = view.table(view.shown(1))
    assert list(frame.latent) == [1, 2]
    assert frame.loc[0, "best label"] == "topic=2" and frame.loc[0, "0:t0"] == 3.0
    out = view.to_dict(1)
    assert [r["latent"] for r in out["top"]] == [1, 2]
    assert out["top"][0]["acts"] == [3.0, 0.0] and out["per_token"][1] == [
        {"latent": 0, "act": 1.0}
    ]
    text = text_report(view, 1)
    assert "topic=2" in text and "latent 1 (3.000)" in text
    for bad in (-1, 3):
        with pytest.raises(InputError, match=rf"latent {bad} out of range \[0, 3\)"):
            view.check_unit(bad)
    with pytest.raises(InputError, match="token 5 out of range"):
        view.token_units(5)


def test_logit_effects_of_planted_directions():
    w_u = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])  # (d_model 2, vocab 3)
    out = logit_effects(torch.eye(2), w_u, lambda i: "abc"[i], k=2)
    assert out[0] == {"up": [("a", 1.0), ("c", 0.5)], "down": [("b", -2.0), ("c", 0.5)]}
    assert out[1]["up"][0] == ("b", 3.0) and out[1]["down"][0] == ("c", -1.0)
    with pytest.raises(InputError, match="width 3, the unembedding d_model 2"):
        logit_effects(torch.ones(1, 3), w_u, str)


def test_prompt_text_choices():
    assert prompt_text("the cat", None, None) == ("the cat", {})
    text, labels = prompt_text(None, "grammar-lm", 0)
    assert text and set(labels) == {"topic", "sentiment"}
    with pytest.raises(InputError, match="no prompt"):
        prompt_text(None)
    with pytest.raises(InputError, match="needs a dataset"):
        prompt_text(None, None, 3)
    with pytest.raises(InputError, match="example 500 out of range"):
        prompt_text(None, "grammar-lm", 500)


def test_identity_sae_view_is_the_residual_stream(neox):
    sae = identity_sae(64)
    text = "the cat sat on the mat"
    view = prompt_view(neox, sae, text, SITE, trained_site=SITE)
    resid = capture(neox, SITE, [text]).numpy(SITE)
    assert view.tokens.tokens[1:] == text.split() and view.tokens.special == [0]
    np.testing.assert_allclose(view.acts[:, :64], np.maximum(resid, 0), atol=1e-5)
    np.testing.assert_allclose(view.acts[:, 64:], np.maximum(-resid, 0), atol=1e-5)
    assert any("no feature report" in n for n in view.notes)
    position = 2
    detail = token_logits(view, sae, neox, position, n=3, k=4)
    w_u = neox.model.W_U.detach()
    for row in detail["units"]:
        j = row["latent"]
        assert row["act"] == pytest.approx(float(view.acts[position, j]))
        sign = 1.0 if j < 64 else -1.0  # decoder row j is e_j, row 64 + j is -e_j
        logits = sign * w_u[j % 64]
        assert row["up"][0][1] == pytest.approx(float(logits.max()), abs=1e-5)
        assert row["down"][0][1] == pytest.approx(float(logits.min()), abs=1e-5)


def test_bad_inputs_are_refused_naming_both(neox):
    with pytest.raises(InputError, match="trained on site 'blocks.0.hook_resid_post', not"):
        prompt_view(
            neox, identity_sae(64), "the cat", SITE, trained_site="blocks.0.hook_resid_post"
        )
    with pytest.raises(InputError, match="gives width 64 at site .*trained on width 32"):
        prompt_view(neox, identity_sae(32), "the cat", SITE)
    for empty in ("", "   "):
        with pytest.raises(InputError, match="the prompt is empty"):
            prompt_view(neox, identity_sae(64), empty, SITE)
    with pytest.raises(InputError, match="latent 128 out of range"):
        prompt_view(neox, identity_sae(64), "the cat", SITE, pinned=[128])


def test_a_prompt_longer_than_the_context_is_cut_and_said(neox):
    context = neox.model.cfg.n_ctx
    tokens = prompt_tokens(neox, " ".join(["cat"] * (context + 20)))
    assert tokens.ids.shape == (1, context) and len(tokens.tokens) == context
    assert tokens.truncated_from == context + 21  # the BOS counts
    assert f"truncated to its first {context} tokens" in tokens.note
    view = prompt_view(neox, identity_sae(64), " ".join(["cat"] * (context + 20)), SITE)
    assert view.acts.shape == (context, 128)
    assert "truncated" in text_report(view)
