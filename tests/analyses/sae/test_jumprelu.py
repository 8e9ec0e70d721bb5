"""JumpReLU SAEs (issue 22, item 4; Rajamanoharan et al. 2024): the activation, the straight-
through estimators of the threshold, the L0 penalty, resampling, resume, SAELens's format, and
`sae train --arch jumprelu` with its defaults on planted data and on the zoo.

Measured (2026-12-07, 2 cores shared, one torch thread): CLI defaults on 20,000 planted rows
(d 48, 3 of 96 directions per row): explained variance 0.955, planted-direction recovery
0.999, L0 2.7, loss converged, ~20 s (TopK defaults: 0.961, 0.995, L0 6, ~9 s).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import planted, recovery, run
from safetensors.torch import load_file, save_file

from analyses.sae import (
    TrainConfig,
    create_sae,
    evaluate,
    load_sae,
    read_log,
    save_sae,
    save_saelens,
    train,
)
from analyses.sae.jumprelu import jumprelu, step
from analyses.sae.resample import resample_dead
from workbench.errors import InputError


def test_activation_is_saelens_jumprelu():
    sae = create_sae("jumprelu", d_in=4, d_sae=3)
    with torch.no_grad():
        sae.threshold.copy_(torch.tensor([0.5, 0.0, 2.0]))
    h = torch.tensor([[0.4, -1.0, 2.5], [0.6, 0.3, 2.0]])
    # z = ReLU(h) * (h > theta): off below (or at) the threshold, the full h above (no shrinkage)
    expected = torch.tensor([[0.0, 0.0, 2.5], [0.6, 0.3, 0.0]])
    torch.testing.assert_close(sae.activation(h), expected)
    torch.testing.assert_close(jumprelu(h, sae.threshold, 0.1), expected)


def test_straight_through_gradients_follow_the_paper():
    """The paper's section 4 pseudo-derivatives with the rectangle kernel: d/dtheta H(h -
    theta) = -(1/eps) K((h - theta)/eps) and d/dtheta JumpReLU = -(theta/eps) K(...), summed
    over rows; h gets H(h - theta) from the JumpReLU and nothing through the step unless
    `ste_to_input`."""
    eps = 0.2
    theta = torch.tensor([1.0, 1.0], requires_grad=True)
    h = torch.tensor([[0.95, 0.5], [1.05, 1.5], [1.3, 0.91]], requires_grad=True)
    step(h, theta, eps).sum().backward()
    # in the window |h - theta| < eps / 2: rows 0 and 1 of latent 0, row 2 of latent 1
    torch.testing.assert_close(theta.grad, torch.tensor([-2 / eps, -1 / eps]))
    assert h.grad is None or float(h.grad.abs().sum()) == 0
    theta.grad = None
    h.grad = None
    jumprelu(h, theta, eps).sum().backward()
    torch.testing.assert_close(theta.grad, torch.tensor([-2 * 1.0 / eps, -1 * 1.0 / eps]))
    torch.testing.assert_close(h.grad, (h > theta).float().detach())
    h.grad = None
    step(h, theta, eps, True).sum().backward()  # Anthropic's variant: h gets the STE too
    assert float(h.grad[0, 0]) == pytest.approx(1 / eps) and float(h.grad[0, 1]) == 0


def test_l0_penalty_trains_thresholds_up(tmp_path):
    x, _, _ = planted(n=2000, d=16, m=24, k=3)
    l0 = {}
    for coeff in (0.0, 0.2):
        sae = create_sae("jumprelu", d_in=16, d_sae=64, l0_coeff=coeff)
        config = TrainConfig(n_steps=300, batch_size=100, resample=False, log_every=300)
        train(sae, x, tmp_path / str(coeff), config)
        l0[coeff] = evaluate(sae.eval(), x)["l0"]
        if coeff:
            assert float(sae.threshold.detach().min()) >= 0  # projected onto [0, inf)
            assert float(sae.threshold.detach().mean()) > 0.01  # risen from theta_0 = 0.001
    assert l0[0.2] < 0.75 * l0[0.0], l0  # measured 16.2 vs 27.2


def test_bad_configs():
    for bad, fragment in (
        ({"l0_coeff": -1.0}, "l0_coeff"),
        ({"bandwidth": 0.0}, "bandwidth"),
        ({"init_threshold": float("nan")}, "init_threshold"),
        ({"pre_act_coeff": float("inf")}, "pre_act_coeff"),
    ):
        with pytest.raises(InputError, match=fragment):
            create_sae("jumprelu", d_in=4, d_sae=8, **bad)


def test_resampling_sets_thresholds_at_the_source_rows_edge():
    torch.manual_seed(0)
    sae = create_sae("jumprelu", d_in=8, d_sae=16)
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-3)
    x = torch.randn(4, 8)
    loss, *_ = sae.loss(x)
    loss.backward()
    optimizer.step()
    dead = torch.zeros(16, dtype=torch.bool)
    dead[[1, 3, 5, 7, 9, 11]] = True  # six dead latents, a batch of four rows
    x_hat = sae(x).detach()
    assert resample_dead(sae, optimizer, dead, x, x_hat, seed=1) == 4  # one latent per row
    assert dead.tolist().count(True) == 4  # the two left over wait for the next resampling
    new = dead.nonzero().flatten()
    rows = sae.W_dec.detach()[new]  # distinct rows: no two new latents share a direction
    assert float((rows @ rows.T - torch.eye(4)).abs().max()) < 0.999
    with torch.no_grad():
        h = sae.pre_activations(x)[:, new]
    # each new threshold is the largest pre-activation of its latent on the batch: its row's
    assert torch.allclose(sae.threshold.detach()[new], h.max(dim=0).values, atol=1e-6)
    assert float(optimizer.state[sae.threshold]["exp_avg"][new].abs().sum()) == 0


def test_resume_equals_uninterrupted_with_thresholds(tmp_path):
    x, _, _ = planted(n=1200, d=16, m=24)
    config = TrainConfig(batch_size=100, epochs=3, warmup_steps=5, dead_window_tokens=300)
    whole = create_sae("jumprelu", d_in=16, d_sae=32)
    train(whole, x, tmp_path / "whole", config)
    part = create_sae("jumprelu", d_in=16, d_sae=32)
    assert not train(part, x, tmp_path / "part", config, stop_after=17)["done"]
    resumed = create_sae("jumprelu", d_in=16, d_sae=32)
    assert train(resumed, x, tmp_path / "part", config)["done"]
    for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
        torch.testing.assert_close(getattr(resumed, name), getattr(whole, name), rtol=0, atol=0)
    start = read_log(tmp_path / "whole")[0]
    assert start["plan"]["normalize"] == "unit_mean_sq"  # the architecture's default


def test_saved_sae_folds_the_input_scale(tmp_path):
    x, _, _ = planted(n=600, d=16, m=24)
    x = x * 40.0 + 3.0
    sae = create_sae("jumprelu", d_in=16, d_sae=32)
    train(sae, x, tmp_path / "run", TrainConfig(batch_size=100, epochs=1))
    scale = 1 / float(np.sqrt((x.astype(np.float64) ** 2).sum(1).mean()))
    saved, meta = load_sae(tmp_path / "run")
    assert meta["input_scale_folded"] == pytest.approx(scale, rel=1e-6)
    xt = torch.from_numpy(x)
    torch.testing.assert_close(saved(xt), sae.eval()(xt * scale) / scale, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(saved.threshold, sae.threshold)  # pre-activation units


@pytest.mark.parametrize("fmt", ["ours", "saelens"])
def test_round_trip(tmp_path, fmt):
    sae = create_sae("jumprelu", d_in=8, d_sae=16, l0_coeff=0.1)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p))
        sae.threshold.copy_(torch.rand(16))
    (save_sae if fmt == "ours" else save_saelens)(sae.eval(), tmp_path, {"site": "s"})
    loaded, meta = load_sae(tmp_path)
    assert loaded.config.architecture == "jumprelu" and meta["site"] == "s"
    x = torch.randn(32, 8)
    torch.testing.assert_close(loaded(x), sae(x), rtol=0, atol=0)
    torch.testing.assert_close(loaded.threshold, sae.threshold, rtol=0, atol=0)
    if fmt == "saelens":  # SAELens's file: its architecture name and tensor keys
        cfg = json.loads((tmp_path / "cfg.json").read_text())
        assert cfg["architecture"] == "jumprelu" and (cfg["d_in"], cfg["d_sae"]) == (8, 16)
        keys = set(load_file(str(tmp_path / "sae_weights.safetensors")))
        assert keys == {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"}
    else:
        assert loaded.config.l0_coeff == 0.1


def test_saelens_log_threshold_is_read(tmp_path):
    sae = create_sae("jumprelu", d_in=8, d_sae=16)
    save_saelens(sae, tmp_path)
    tensors = load_file(str(tmp_path / "sae_weights.safetensors"))
    tensors["log_threshold"] = torch.log(torch.full((16,), 0.3))
    del tensors["threshold"]
    save_file(tensors, str(tmp_path / "sae_weights.safetensors"))
    loaded, _ = load_sae(tmp_path)
    torch.testing.assert_close(loaded.threshold.detach(), torch.full((16,), 0.3))


@pytest.mark.slow
def test_cli_defaults_recover_planted_directions(tmp_path, capsys):
    x, directions, _ = planted(n=20_000, d=48, m=96, k=3)
    np.save(tmp_path / "x.npy", x)
    code, text, err = run(
        capsys, "sae", "train", "--acts", str(tmp_path / "x.npy"), "--out", str(tmp_path / "r"),
        "--arch", "jumprelu", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(text)
    assert result["architecture"] == "jumprelu" and result["l0_coeff"] == 0.02
    assert result["steps"] == 2000 and result["converged"], result
    sae, meta = load_sae(tmp_path / "r")
    metrics = evaluate(sae, x)
    assert metrics["explained_variance"] >= 0.85, metrics
    assert recovery(sae, directions) >= 0.9
    assert 2 <= metrics["l0"] <= 4.5, metrics  # 3 planted directions per row
    assert meta["plan"]["normalize"] == "unit_mean_sq"
    print(metrics, recovery(sae, directions))


def test_diverging_jumprelu_names_the_step(tmp_path, capsys):
    x, _, _ = planted(n=2000, d=16, m=24, k=3)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "r"
    code, _, err = run(
        capsys, "sae", "train", "--acts", str(tmp_path / "x.npy"), "--out", str(out),
        "--arch", "jumprelu", "--lr", "1e4", "--steps", "200",
    )  # fmt: skip
    assert code != 0 and "diverged at step" in err and "--lr" in err
    assert not (out / "config.json").exists()
    assert read_log(out)[-1]["event"] == "diverged"


def test_the_job_and_the_app_view_show_jumprelu():
    from analyses.sae.report import SAE_JOB, sae_commands
    from workbench_app.lib.sae_view import architecture_line, threshold_figure, thresholds

    assert "jumprelu" in SAE_JOB.get_field("arch").choices
    values = SAE_JOB.validate({"store": "s", "site": "x", "out": "o", "arch": "jumprelu"})
    train_argv = sae_commands(values)[0]
    assert "--arch=jumprelu" in train_argv and "--l0-coeff=0.02" in train_argv
    topk = sae_commands({**values, "arch": "topk"})[0]
    assert not any(a.startswith("--l0-coeff") for a in topk)
    sae = create_sae("jumprelu", d_in=8, d_sae=16)
    with torch.no_grad():
        sae.threshold.copy_(torch.linspace(0.1, 1.6, 16))
    assert architecture_line(sae) == "jumprelu SAE, 8 -> 16 latents, l0_coeff 0.02, bandwidth 0.001"
    assert thresholds(sae)[3] == pytest.approx(0.4)
    fig = threshold_figure(sae, latent=3)
    assert len(fig.data[0].x) == 16 and fig.layout.shapes[0].x0 == pytest.approx(0.4)
    topk_sae = create_sae("topk", d_in=8, d_sae=16, k=2)
    assert thresholds(topk_sae) is None and threshold_figure(topk_sae) is None
    assert architecture_line(topk_sae).endswith("k 2")


def test_a_saelens_jumprelu_upload_is_imported(tmp_path):
    import io
    import zipfile

    from workbench_app.services.upload_sae import import_sae

    sae = create_sae("jumprelu", d_in=8, d_sae=16)
    with torch.no_grad():
        sae.threshold.copy_(torch.rand(16))
    folder = save_saelens(sae.eval(), tmp_path / "lens", {"site": "blocks.0.hook_resid_post"})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for path in folder.iterdir():
            archive.writestr(f"lens/{path.name}", path.read_bytes())
    done = import_sae([("lens.zip", buf.getvalue())], load=load_sae, runs=tmp_path / "runs")
    assert done.details["format"] == "saelens" and done.details["architecture"] == "jumprelu"
    loaded, meta = load_sae(done.path)
    assert loaded.config.architecture == "jumprelu" and meta["format"] == "saelens"
    torch.testing.assert_close(loaded.threshold, sae.threshold, rtol=0, atol=0)
