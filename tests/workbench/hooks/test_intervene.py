import threading

import pytest
import torch
from torch import nn

from tests.conftest import hook_count
from workbench import (
    Add,
    Apply,
    MeanAblate,
    ProjectOut,
    Replace,
    Splice,
    ZeroAblate,
    capture,
    intervene,
)
from workbench.errors import InputError

TEXTS = ["the cat sat on the mat .", "a dog", "the big red bird flew over the tree"]
SITE = "blocks.1.hook_resid_post"


def logits(handle, texts=TEXTS):
    return handle.run(handle.prepare(texts))


def test_add_shifts_the_site_exactly_and_zero_coeff_changes_nothing(neox):
    base = capture(neox, SITE, TEXTS)[SITE]
    vec = torch.randn(64)
    with intervene(neox, Add(SITE, vec, coeff=3.0)):
        edited = capture(neox, SITE, TEXTS)[SITE]
    torch.testing.assert_close(edited, base + 3.0 * vec)
    clean = logits(neox)
    with intervene(neox, Add(SITE, vec, coeff=0.0)):
        assert torch.equal(logits(neox), clean)
    with intervene(neox, Add(SITE, vec, coeff=3.0)):
        assert not torch.allclose(logits(neox), clean)
    assert torch.equal(logits(neox), clean)  # scoped: the model is exactly as before


def test_replace_zero_mean_ablate(neox):
    mean = torch.arange(64, dtype=torch.float32)
    with intervene(neox, ZeroAblate(SITE)):
        assert torch.count_nonzero(capture(neox, SITE, TEXTS)[SITE]) == 0
    with intervene(neox, MeanAblate(SITE, mean)):
        got = capture(neox, SITE, TEXTS)[SITE]
    assert torch.equal(got, mean.expand_as(got))
    with intervene(neox, Replace(SITE, torch.ones(64))):
        assert torch.equal(capture(neox, SITE, TEXTS)[SITE], torch.ones_like(got))
    with (
        pytest.raises(InputError, match="width 5"),
        intervene(neox, MeanAblate(SITE, torch.zeros(5))),
    ):
        capture(neox, SITE, TEXTS)


def test_project_out_removes_only_that_direction(neox):
    base = capture(neox, SITE, TEXTS)[SITE]
    u = torch.randn(64)
    with intervene(neox, ProjectOut(SITE, u)):
        got = capture(neox, SITE, TEXTS)[SITE]
    unit = u / u.norm()
    assert (got @ unit).abs().max() < 1e-4
    torch.testing.assert_close(got + (base @ unit)[:, None] * unit, base, atol=1e-4, rtol=1e-4)


def test_splice_identity_is_a_no_op_and_edits_compose(neox):
    clean = logits(neox)
    with intervene(neox, Splice(SITE, nn.Identity())):
        torch.testing.assert_close(logits(neox), clean)
    base = capture(neox, SITE, TEXTS)[SITE]
    with intervene(neox, [Apply(SITE, lambda x: 2 * x), Add(SITE, torch.ones(64))]):
        torch.testing.assert_close(capture(neox, SITE, TEXTS)[SITE], 2 * base + 1)


def test_pattern_edits_every_matching_site(neox):
    with intervene(neox, ZeroAblate("blocks.*.hook_resid_post")):
        got = capture(neox, "blocks.*.hook_resid_post", TEXTS)
    assert all(torch.count_nonzero(t) == 0 for t in got.acts.values())


def test_hooks_removed_on_exception(neox):
    before = hook_count(neox.model)
    with pytest.raises(ZeroDivisionError), intervene(neox, ZeroAblate(SITE)):
        assert hook_count(neox.model) == before + 1
        raise ZeroDivisionError
    assert hook_count(neox.model) == before


def test_generation_same_tokens_with_and_without_kv_cache(neox):
    vec = 4.0 * torch.randn(64)
    plain = neox.generate(TEXTS, max_new_tokens=6, use_cache=True)
    with intervene(neox, Add("blocks.0.hook_resid_post", vec)):
        cached = neox.generate(TEXTS, max_new_tokens=6, use_cache=True)
        uncached = neox.generate(TEXTS, max_new_tokens=6, use_cache=False)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, plain)  # the edit did act during generation


def test_other_threads_never_compute_under_an_edit(neox):
    clean = capture(neox, SITE, TEXTS)[SITE]
    inside = threading.Event()
    release = threading.Event()
    seen = {}

    def other_session():
        inside.wait()
        seen["acts"] = capture(neox, SITE, TEXTS)[SITE]

    thread = threading.Thread(target=other_session)
    thread.start()
    with intervene(neox, ZeroAblate(SITE)):
        inside.set()
        release.wait(0.3)  # give the other thread time to try (it must block on the lock)
        assert "acts" not in seen
    thread.join()
    assert torch.equal(seen["acts"], clean)


def test_plain_module_edit(mlp):
    x = torch.randn(4, 8)
    with intervene(mlp, ZeroAblate("fc2")):
        out = mlp.run(mlp.prepare(x))
    torch.testing.assert_close(out, mlp.model.head(torch.zeros(4, 16)).expand(4, 3))
    with pytest.raises(InputError, match="not an edit"), intervene(mlp, ["fc2"]):
        pass
