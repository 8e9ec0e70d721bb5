"""Architectures: activation rules, decoder norms, input-scale folding, bad configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.sae import create_sae, identity_sae
from analyses.sae.losses import normalized_mse
from workbench.errors import InputError


def test_topk_keeps_exactly_k_largest():
    sae = create_sae("topk", d_in=8, d_sae=32, k=5)
    x = torch.randn(100, 8)
    h = sae.pre_activations(x)
    z = sae.encode(x)
    assert ((z > 0).sum(1) <= 5).all()
    kth = h.topk(5, dim=1).values[:, -1:]
    assert torch.equal(z, torch.where((h >= kth) & (h > 0), h, torch.zeros_like(h)))


def test_relu_is_relu_and_shapes():
    sae = create_sae("relu", d_in=8, d_sae=16)
    x = torch.randn(3, 5, 8)
    assert torch.equal(sae.encode(x), torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc))
    assert sae(x).shape == x.shape


def test_batchtopk_keeps_k_per_row_on_average_and_threshold_at_inference():
    sae = create_sae("batchtopk", d_in=8, d_sae=64, k=4)
    x = torch.randn(256, 8)
    sae.train()
    _, _, z, _ = sae.loss(x)
    assert int((z > 0).sum()) == 4 * 256
    assert float(sae.threshold[0]) == pytest.approx(float(z[z > 0].min()))
    sae.eval()
    h = sae.pre_activations(x)
    assert torch.equal(sae.encode(x), h * (h > sae.threshold))


def test_unit_norm_decoder_after_step_and_grad_projection():
    sae = create_sae("topk", d_in=8, d_sae=16, k=2)
    loss, *_ = sae.loss(torch.randn(64, 8))
    loss.backward()
    sae.before_step()
    parallel = (sae.W_dec.grad * sae.W_dec).sum(1)
    assert parallel.abs().max() < 1e-6
    with torch.no_grad():
        sae.W_dec.mul_(3.0)
    sae.after_step()
    np.testing.assert_allclose(sae.W_dec.norm(dim=1).detach().numpy(), 1.0, rtol=1e-6)


def test_fold_input_scale_is_exact():
    for arch in ("relu", "topk", "batchtopk"):
        sae = create_sae(arch, d_in=8, d_sae=16, **({} if arch == "relu" else {"k": 3}))
        with torch.no_grad():
            sae.b_dec.copy_(torch.randn(8))
        sae.eval()
        x = torch.randn(20, 8)
        scale = 2.5
        expected = sae(x * scale) / scale
        z_before = sae.encode(x * scale)
        sae.fold_input_scale(scale)
        torch.testing.assert_close(sae(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae.encode(x), z_before, rtol=1e-5, atol=1e-5)


def test_auxk_loss_zero_without_dead_and_positive_with():
    sae = create_sae("topk", d_in=8, d_sae=32, k=2)
    x = torch.randn(64, 8)
    _, parts, _, _ = sae.loss(x, torch.zeros(32, dtype=torch.bool))
    assert float(parts["auxk"]) == 0.0
    _, parts, _, _ = sae.loss(x, torch.ones(32, dtype=torch.bool))
    assert float(parts["auxk"]) > 0.0


def test_normalized_mse_closed_form():
    x = torch.randn(50, 4, dtype=torch.float64)
    assert float(normalized_mse(x.mean(0).expand_as(x), x)) == pytest.approx(1.0)
    assert float(normalized_mse(x, x)) == 0.0


@pytest.mark.parametrize(
    "arch,settings,fragment",
    [
        ("topk", {"d_in": 8, "d_sae": 16, "k": 17}, "k must be an integer in [1, d_sae = 16]"),
        ("topk", {"d_in": 8, "d_sae": 16, "k": 0}, "k must be"),
        ("relu", {"d_in": 8, "d_sae": 16, "decoder_norm": "free"}, "weighted, unit"),
        ("relu", {"d_in": 0, "d_sae": 16}, "d_in must be a positive integer"),
        ("gated", {"d_in": 8, "d_sae": 16}, "valid: relu, topk, batchtopk"),
        ("topk", {"d_in": 8, "d_sae": 16, "kk": 3}, "no setting kk"),
    ],
)
def test_bad_configs(arch, settings, fragment):
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        create_sae(arch, **settings)


def test_bad_inputs_width_and_nan():
    sae = create_sae("topk", d_in=8, d_sae=16, k=2)
    with pytest.raises(InputError, match="width 7 but the SAE was built for d_in = 8"):
        sae.check_input(torch.zeros(3, 7))
    bad = torch.zeros(3, 8)
    bad[1, 2] = float("nan")
    with pytest.raises(InputError, match="1 NaN"):
        sae.check_input(bad)


def test_identity_sae_latents_are_relu_of_each_sign_and_it_reconstructs_exactly():
    x = torch.randn(50, 6)
    sae = identity_sae(6)
    z = sae.encode(x)
    assert torch.equal(z, torch.cat([x.relu(), (-x).relu()], 1))
    assert torch.allclose(sae.decode(z), x, atol=1e-6)
