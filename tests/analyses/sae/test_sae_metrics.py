"""Metrics against closed forms; streaming equals in-memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.sae import metrics as M
from analyses.sae.downstream import score


def sums(x, x_hat, z, batch=None):
    s = M.ReconstructionSums(x.shape[1], z.shape[1])
    batch = batch or len(x)
    for a in range(0, len(x), batch):
        s.update(
            torch.as_tensor(x[a : a + batch]),
            torch.as_tensor(x_hat[a : a + batch]),
            torch.as_tensor(z[a : a + batch]),
        )
    return s


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)) * np.arange(1, 7) + 3.0
    x_hat = x + 0.3 * rng.standard_normal(x.shape)
    z = np.maximum(rng.standard_normal((500, 10)) - 0.5, 0)
    return x, x_hat, z


def test_explained_variance_zero_for_mean_one_for_perfect(data):
    x, _, z = data
    mean = np.broadcast_to(x.mean(0), x.shape)
    assert M.explained_variance(sums(x, mean, z)) == pytest.approx(0.0, abs=1e-12)
    assert M.explained_variance(sums(x, x, z)) == pytest.approx(1.0)


def test_explained_variance_closed_form_not_per_batch_mean(data):
    x, x_hat, z = data
    expected = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert M.explained_variance(sums(x, x_hat, z, batch=37)) == pytest.approx(expected, rel=1e-10)
    # the legacy mean of per-batch ratios differs: the definition is a ratio of sums
    legacy = np.mean(
        [
            1
            - ((x[a : a + 37] - x_hat[a : a + 37]) ** 2).sum()
            / ((x[a : a + 37] - x[a : a + 37].mean(0)) ** 2).sum()
            for a in range(0, 500, 37)
        ]
    )
    assert abs(legacy - expected) > 1e-4


def test_each_metric_closed_form(data):
    x, x_hat, z = data
    s = sums(x, x_hat, z, batch=64)
    assert M.l0(s) == pytest.approx((z > 0).sum(1).mean())
    assert M.mse(s) == pytest.approx(((x - x_hat) ** 2).sum(1).mean())
    cos = (x * x_hat).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(x_hat, axis=1)
    assert M.cosine(s) == pytest.approx(cos.mean())
    ratio = np.linalg.norm(x_hat, axis=1) / np.linalg.norm(x, axis=1)
    assert M.norm_ratio(s) == pytest.approx(ratio.mean())
    assert M.relative_reconstruction_bias(s) == pytest.approx((x_hat**2).sum() / (x * x_hat).sum())
    density = (z > 0).mean(0)
    np.testing.assert_allclose(M.density(s), density)
    assert M.dead_fraction(s) == pytest.approx((density == 0).mean())
    assert M.dense_fraction(s, 0.2) == pytest.approx((density > 0.2).mean())


def test_dead_and_dense_exact():
    x = np.ones((4, 2))
    z = np.array([[1, 0, 0, 1], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], float)
    s = sums(x, x, z)
    assert M.dead_fraction(s) == 0.5  # latents 1, 2
    assert M.dense_fraction(s, 0.5) == 0.25  # latent 0 fires on 100%
    assert np.isnan(M.explained_variance(s))  # constant x: no variance to explain


def test_streaming_equals_in_memory_and_merge(data):
    x, x_hat, z = data
    whole = M.summary(sums(x, x_hat, z))
    streamed = M.summary(sums(x, x_hat, z, batch=7))
    merged = M.summary(
        sums(x[:200], x_hat[:200], z[:200]).merge(sums(x[200:], x_hat[200:], z[200:]))
    )
    for key in whole:
        assert streamed[key] == pytest.approx(whole[key], rel=1e-10)
        assert merged[key] == pytest.approx(whole[key], rel=1e-10)


def test_density_histogram():
    densities = np.array([0.0, 0.0, 1e-3, 1e-3, 0.5, 1.0])
    counts, edges, dead = M.density_histogram(densities, bins=np.array([-4.0, -2.0, 0.0]))
    assert dead == 2
    assert counts.tolist() == [2, 2]


def test_loss_recovered_reference_value():
    # neuronpedia gpt2-small res_mid_128k-oai layer 7 metrics.json (METHODS.md 3.3)
    got = score(3.599064588546753, 3.668210983276367, 13.054040908813477)
    assert got == pytest.approx(0.9926867722998524, abs=1e-12)
