import threading
import time

import pytest
import torch

from tests.conftest import hook_count
from workbench import capture
from workbench.errors import InputError, NonFiniteActivationError, UnknownSiteError

TEXTS = [
    "The quick brown fox jumps over the lazy dog near the river bank today.",
    "Hello world",
    "Activations are captured with scoped hooks.",
]
NEOX_TEXTS = ["the cat sat on the mat .", "a dog", "the big red bird flew over the tree"]


@pytest.mark.parametrize("fixture,texts", [("minilm", TEXTS), ("neox", NEOX_TEXTS)])
def test_left_padded_batch_equals_one_by_one(request, fixture, texts):
    handle = request.getfixturevalue(fixture)
    batch = capture(handle, "blocks.*.hook_resid_post", texts)
    assert batch.acts["blocks.0.hook_resid_post"].shape[0] == int(batch.example_index.numel())
    for i, text in enumerate(texts):
        alone = capture(handle, "blocks.*.hook_resid_post", [text])
        rows = batch.example_index == i
        assert torch.equal(batch.position[rows], alone.position)
        assert torch.equal(batch.token_ids[rows], alone.token_ids)
        for site in alone.sites:
            torch.testing.assert_close(batch[site][rows], alone[site], atol=1e-4, rtol=1e-4)


def test_minilm_matches_hugging_face_hidden_states(minilm):
    from transformers import AutoModel

    hf = AutoModel.from_pretrained(minilm.info.location, attn_implementation="eager").eval()
    enc = minilm.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**enc, output_hidden_states=True).hidden_states
    got = capture(minilm, "blocks.5.hook_resid_post", TEXTS[:1])
    torch.testing.assert_close(got["blocks.5.hook_resid_post"], hidden[6][0], atol=1e-5, rtol=1e-5)


def test_positions_last_int_slice_mask(neox):
    full = capture(neox, "blocks.1.hook_resid_post", NEOX_TEXTS)
    site = "blocks.1.hook_resid_post"
    lengths = torch.bincount(full.example_index)
    last = capture(neox, site, NEOX_TEXTS, positions="last")
    assert last.position.tolist() == (lengths - 1).tolist()
    for i in range(len(NEOX_TEXTS)):
        rows = (full.example_index == i).nonzero().squeeze(1)
        torch.testing.assert_close(last[site][i], full[site][rows[-1]])
    first = capture(neox, site, NEOX_TEXTS, positions=0)
    assert first.position.tolist() == [0, 0, 0]
    tail = capture(neox, site, NEOX_TEXTS, positions=slice(-2, None))
    assert tail.position.tolist() == [int(n) - k for n in lengths for k in (2, 1)]
    batch = neox.prepare(NEOX_TEXTS)
    mask = torch.zeros_like(batch.attention_mask, dtype=torch.bool)
    mask[:, -1] = True
    masked = capture(neox, site, batch, positions=mask)
    torch.testing.assert_close(masked[site], last[site])
    with pytest.raises(InputError, match="bool"):
        capture(neox, site, batch, positions=mask.long())


def test_dtype_cast_inside_hook(neox):
    got = capture(neox, "blocks.0.hook_resid_post", NEOX_TEXTS, dtype=torch.float16)
    ref = capture(neox, "blocks.0.hook_resid_post", NEOX_TEXTS)
    assert got["blocks.0.hook_resid_post"].dtype == torch.float16
    torch.testing.assert_close(
        got["blocks.0.hook_resid_post"].float(),
        ref["blocks.0.hook_resid_post"],
        atol=1e-2,
        rtol=1e-2,
    )


def test_forward_stops_after_deepest_site(neox):
    fired = []
    late = neox.site_modules["blocks.3.hook_resid_post"]
    foreign = late.register_forward_hook(lambda m, i, o: fired.append(1))
    try:
        capture(neox, "blocks.0.hook_resid_post,blocks.1.hook_resid_post", NEOX_TEXTS)
        assert fired == []
        capture(neox, "blocks.1.hook_resid_post", NEOX_TEXTS, stop_early=False)
        assert fired == [1]
    finally:
        foreign.remove()


def test_hooks_are_removed_and_foreign_hooks_kept(neox):
    module = neox.site_modules["blocks.2.hook_resid_post"]
    foreign = module.register_forward_hook(lambda m, i, o: None)
    before = hook_count(neox.model)
    capture(neox, "blocks.*.hook_resid_post", NEOX_TEXTS)
    assert hook_count(neox.model) == before
    with pytest.raises(InputError):  # fails inside the forward pass: wrong token ids
        capture(neox, "blocks.*.hook_resid_post", torch.full((1, 3), 10_000))

    def explode(m, i, o):
        raise RuntimeError("boom mid-pass")

    bomb = neox.site_modules["blocks.1.hook_resid_pre"].register_forward_hook(explode)
    with pytest.raises(RuntimeError, match="boom"):  # raised inside the forward pass
        capture(neox, "blocks.*.hook_resid_post", NEOX_TEXTS)
    bomb.remove()
    assert hook_count(neox.model) == before
    assert foreign.id in module._forward_hooks
    foreign.remove()


def test_unknown_site_error_lists_closest(neox):
    with pytest.raises(UnknownSiteError, match="blocks.0.hook_resid_post"):
        capture(neox, "blocks.0.hook_resid_pots", NEOX_TEXTS)


def test_plain_module_sites_by_path_and_shared_module(mlp):
    x = torch.randn(5, 8)
    got = capture(mlp, "fc1,act,head", x)
    assert got["fc1"].shape == (5, 16) and got["head"].shape == (5, 3)
    # `act` is called twice per pass: the second call is `act#1`
    torch.testing.assert_close(got["act"], torch.relu(mlp.model.fc1(x)))
    torch.testing.assert_close(got["act#1"], torch.relu(mlp.model.fc2(got["act"])))
    torch.testing.assert_close(got["head"], mlp.model(x).detach())
    # after the first (counting) pass, stopping early still captures both calls of `act`
    again = capture(mlp, "act", x)
    assert set(again.acts) == {"act", "act#1"}
    with pytest.raises(InputError, match="token sequence"):
        capture(mlp, "fc1", x, positions="last")
    with pytest.raises(InputError, match="plain torch module"):
        capture(mlp, "fc1", ["text"])
    with pytest.raises(InputError, match=r"cannot take input \(5, 7\) torch.float32"):
        capture(mlp, "fc1", torch.randn(5, 7))


def test_nan_reported_with_site_and_position(mlp):
    x = torch.randn(4, 8)
    x[2, 5] = float("nan")
    with pytest.raises(NonFiniteActivationError, match=r"site 'fc1', example 2"):
        capture(mlp, "fc1", x)
    assert hook_count(mlp.model) == 0


def test_token_id_validation(neox):
    with pytest.raises(InputError, match="token ids must lie"):
        capture(neox, "blocks.0.hook_resid_post", torch.tensor([[1, 2, 99999]]))
    with pytest.raises(InputError, match="integer"):
        capture(neox, "blocks.0.hook_resid_post", torch.randn(2, 3))
    with pytest.raises(InputError, match="right-padded"):
        capture(
            neox,
            "blocks.0.hook_resid_post",
            {"input_ids": torch.tensor([[3, 4, 1]]), "attention_mask": torch.tensor([[1, 1, 0]])},
        )


def test_lock_serialises_hooked_passes(neox):
    entered = threading.Event()
    order = []

    def holder():
        with neox.lock:
            entered.set()
            time.sleep(0.3)
            order.append("holder done")

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait()
    capture(neox, "blocks.0.hook_resid_post", NEOX_TEXTS)
    order.append("capture done")
    thread.join()
    assert order == ["holder done", "capture done"]
