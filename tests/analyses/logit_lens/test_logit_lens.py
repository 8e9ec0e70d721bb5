import pytest
import torch

from analyses.logit_lens.api import layer_norms, logit_lens
from workbench.errors import InputError

TEXT = "the big cat sat on the mat ."


def test_last_layer_lens_is_the_model_output(neox):
    frame = logit_lens(neox, TEXT)
    last = frame[frame["layer"] == frame["layer"].max()]
    logits = neox.run(neox.prepare([TEXT]))[0]
    probs = logits.softmax(-1)
    top_prob, top_id = probs.max(-1)
    assert list(last["top_prob"]) == pytest.approx(top_prob.tolist(), rel=1e-5)
    assert list(last["top_token"]) == [neox.tokenizer.decode([int(i)]) for i in top_id]
    ids = neox.prepare([TEXT]).input_ids[0]
    expected_next = [float(probs[p, ids[p + 1]]) for p in range(len(ids) - 1)]
    assert list(last["next_token_prob"])[:-1] == pytest.approx(expected_next, rel=1e-5)
    assert set(frame["layer"]) == {0, 1, 2, 3}


def test_layer_norms_match_capture(neox):
    frame = layer_norms(neox, TEXT)
    from workbench import capture

    acts = capture(neox, "blocks.2.hook_resid_post", [TEXT])
    got = frame[frame["layer"] == 2]["norm"].to_numpy()
    torch.testing.assert_close(
        torch.tensor(got, dtype=torch.float32), acts["blocks.2.hook_resid_post"].norm(dim=-1)
    )


def test_lens_refuses_non_causal_models(minilm, mlp):
    with pytest.raises(InputError, match="causal"):
        logit_lens(minilm, "hello")
    with pytest.raises(InputError, match="language model"):
        layer_norms(mlp, "hello")
