"""Trainer: planted directions recovered, resume equals uninterrupted, store = array, log,
normalisation folded at save, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import planted, write_store

from analyses.sae import TrainConfig, create_sae, evaluate, load_sae, read_log, train, train_sae
from analyses.sae.data import RowSource
from workbench.errors import InputError


@pytest.mark.slow
def test_topk_recovers_planted_directions(tmp_path):
    x, directions, _ = planted(n=8000, d=32, m=48, k=3)
    config = TrainConfig(
        batch_size=256, epochs=8, lr=3e-3, warmup_steps=10, dead_window_tokens=4000
    )
    # 2x as many latents as planted directions (Gao et al.: recovery improves with width)
    sae, result = train_sae(x, tmp_path / "run", "topk", config, d_sae=96, k=3)
    assert result["done"]
    w = sae.W_dec.detach().numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    best = np.abs(directions @ w.T).max(axis=1)  # best-matching latent per planted direction
    assert best.mean() >= 0.9, best
    assert evaluate(sae, x)["explained_variance"] > 0.8


def test_random_directions_do_not_match():
    # the same statistic on an untrained SAE: the test above can fail
    _, directions, _ = planted(n=10, d=32, m=48, k=3)
    sae = create_sae("topk", d_in=32, d_sae=96, k=3)
    w = sae.W_dec.detach().numpy()
    assert np.abs(directions @ w.T).max(axis=1).mean() < 0.7


@pytest.mark.parametrize("arch", ["topk", "relu", "batchtopk"])
def test_resume_equals_uninterrupted(tmp_path, arch):
    x, _, _ = planted(n=1200, d=16, m=24)
    settings = {"d_sae": 32} if arch == "relu" else {"d_sae": 32, "k": 3}
    config = TrainConfig(
        batch_size=100,
        epochs=3,
        lr=2e-3,
        warmup_steps=5,
        dead_window_tokens=300,
        normalize="expected_norm",
    )
    whole = create_sae(arch, d_in=16, **settings)
    train(whole, x, tmp_path / "whole", config)
    part = create_sae(arch, d_in=16, **settings)
    first = train(part, x, tmp_path / "part", config, stop_after=17)  # mid-epoch 2
    assert not first["done"] and first["steps"] == 17
    resumed = create_sae(arch, d_in=16, **settings, seed=0)  # a fresh process would do this
    second = train(resumed, x, tmp_path / "part", config)
    assert second["done"] and second["steps"] == 36
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        torch.testing.assert_close(getattr(resumed, name), getattr(whole, name), rtol=0, atol=0)
    events = [r["event"] for r in read_log(tmp_path / "part")]
    assert events.count("start") == 2 and events[-1] == "done" and "paused" in events


def test_resume_refuses_other_settings(tmp_path):
    x, _, _ = planted(n=400, d=16, m=24)
    sae = create_sae("topk", d_in=16, d_sae=32, k=3)
    train(sae, x, tmp_path / "r", TrainConfig(batch_size=100, n_steps=4), stop_after=2)
    with pytest.raises(InputError, match="other settings"):
        train(sae, x, tmp_path / "r", TrainConfig(batch_size=50, n_steps=4))


def test_store_training_equals_array_training(tmp_path):
    x, _, _ = planted(n=960, d=16, m=24)
    store = write_store(tmp_path / "store", x, chunks=3)
    config = TrainConfig(batch_size=128, epochs=2, lr=1e-3, warmup_steps=2)
    a = create_sae("topk", d_in=16, d_sae=32, k=3)
    b = create_sae("topk", d_in=16, d_sae=32, k=3)
    train(a, x, tmp_path / "a", config)
    train(b, store, tmp_path / "b", config, site="blocks.0.hook_resid_post")
    torch.testing.assert_close(a.W_dec, b.W_dec, rtol=0, atol=0)


def test_epoch_batches_are_iter_batches_rows(tmp_path):
    x, _, _ = planted(n=500, d=16, m=24)
    store = write_store(tmp_path / "store", x, chunks=2)
    source = RowSource(store=store, site="blocks.0.hook_resid_post")
    ours = list(source.epoch_batches(64, seed=3, epoch=0))
    theirs = list(store.iter_batches("blocks.0.hook_resid_post", 64, shuffle=True, seed=3))
    for a, b in zip(ours, theirs, strict=True):
        # same rows per batch (ours gathered in row order: sequential reads of the memory map)
        np.testing.assert_array_equal(np.sort(a, axis=0), np.sort(b, axis=0))


def test_log_and_saved_sae_fold_normalisation(tmp_path):
    x, _, _ = planted(n=600, d=16, m=24)
    x = x * 40.0 + 3.0
    config = TrainConfig(batch_size=100, epochs=1, normalize="expected_norm", log_every=2)
    sae, _ = train_sae(x, tmp_path / "run", "topk", config, d_sae=32, k=3)
    records = read_log(tmp_path / "run")
    assert records[0]["event"] == "start" and records[-1]["event"] == "done"
    steps = [r for r in records if r["event"] == "step"]
    assert [r["step"] for r in steps] == [2, 4, 6]
    assert {"loss", "nmse", "auxk", "lr", "batch_l0", "dead_fraction", "tokens_per_s"} <= set(
        steps[0]
    )
    scale = float(np.sqrt(16) / np.linalg.norm(x.astype(np.float64), axis=1).mean())
    saved, meta = load_sae(tmp_path / "run")
    assert meta["input_scale_folded"] == pytest.approx(scale, rel=1e-6)
    xt = torch.from_numpy(x)
    torch.testing.assert_close(saved(xt), sae(xt * scale) / scale, rtol=1e-4, atol=1e-4)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["architecture"] == "topk"


def test_bad_input(tmp_path):
    sae = create_sae("topk", d_in=16, d_sae=32, k=3)
    with pytest.raises(InputError, match="width 8 but the SAE has d_in = 16"):
        train(sae, np.zeros((10, 8), np.float32), tmp_path / "a")
    x = np.ones((50, 16), np.float32)
    x[7, 3] = np.nan
    with pytest.raises(InputError, match="NaN/Inf"):
        train(sae, x, tmp_path / "b", TrainConfig(batch_size=10, b_dec_init="zeros"))
    store = write_store(tmp_path / "s", np.ones((40, 8), np.float32))
    with pytest.raises(InputError, match="site 'blocks.0.hook_resid_post'"):
        train(sae, store, tmp_path / "c", site="blocks.0.hook_resid_post")
    with pytest.raises(InputError, match="normalize"):
        TrainConfig(normalize="layer_norm")
