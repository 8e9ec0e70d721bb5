"""Similarity maps: layer x layer, checkpoint x layer, model x model; each layer decomposed once;
streaming maps equal in-memory ones; the SVCCA compression check on a quick toy-lm."""

import numpy as np
import pytest

from analyses.similarity import cca as _cca
from analyses.similarity import maps as similarity_maps
from analyses.similarity.compare import SVCCAParams, compare
from analyses.similarity.maps import checkpoint_map, cross_map, layer_map
from workbench.errors import InputError


def layers(n=1200, seed=0, drift=0.0):
    """Four layers sharing a latent; layer i adds i units of private noise (so deeper layers
    drift further from layer 0); `drift` perturbs every layer (a checkpoint before the end)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 12))
    mixes = np.random.default_rng(99).normal(size=(4, 12, 16))
    return {
        f"l{i}": latent @ mixes[i]
        + i * np.random.default_rng(100 + i).normal(size=(n, 16))
        + drift * rng.normal(size=(n, 16))
        for i in range(4)
    }


@pytest.mark.parametrize("measure", ["svcca", "cca", "pwcca", "cka", "procrustes"])
def test_layer_map_equals_pairwise(measure):
    data = layers()
    result = layer_map(data, measure=measure)
    matrix = np.array(result.headline["matrix"])
    names = result.headline["sites_a"]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            assert matrix[i, j] == pytest.approx(
                compare(data[a], data[b], measure).similarity, abs=1e-9
            )
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)
    assert len(result.frame) == 16 and set(result.frame["metric"]) == {measure}


def test_each_layer_decomposed_once(monkeypatch):
    calls = []
    real = _cca.decompose

    def counting(x, *args, **kwargs):
        calls.append(x.shape)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(similarity_maps._cca, "decompose", counting)
    layer_map(layers())
    assert len(calls) == 4
    calls.clear()
    layer_map(layers(), stream=True, params=SVCCAParams(batch_size=500))
    assert len(calls) == 4


@pytest.mark.parametrize("measure", ["svcca", "pwcca", "cka", "procrustes"])
def test_streamed_maps_equal_in_memory(measure, tmp_path):
    from dataclasses import replace

    from analyses.similarity.compare import default_params

    data = layers()
    params = replace(default_params(measure), batch_size=250)
    memory = np.array(layer_map(data, measure=measure).headline["matrix"])
    streamed = np.array(
        layer_map(data, measure=measure, params=params, stream=True).headline["matrix"]
    )
    np.testing.assert_allclose(streamed, memory, atol=1e-9)
    other = layers(seed=0, drift=0.5)
    np.testing.assert_allclose(
        np.array(
            cross_map(data, other, measure=measure, params=params, stream=True).headline["matrix"]
        ),
        np.array(cross_map(data, other, measure=measure).headline["matrix"]),
        atol=1e-9,
    )


def test_checkpoint_map_recovers_planted_convergence():
    final = layers()
    # checkpoints: the final layers plus shrinking noise
    stores = {step: layers(drift=d) for step, d in ((0, 3.0), (10, 1.0), (20, 0.3))}
    stores[30] = final
    result = checkpoint_map(stores, measure="cca")
    matrix = np.array(result.headline["matrix"])
    assert result.headline["steps"] == [0, 10, 20, 30]
    np.testing.assert_allclose(matrix[-1], 1.0, atol=1e-9)
    assert np.all(np.diff(matrix, axis=0) > 0)  # closer to the end at every later step
    streamed = checkpoint_map(
        stores, measure="cca", stream=True, params=SVCCAParams(batch_size=400)
    )
    np.testing.assert_allclose(np.array(streamed.headline["matrix"]), matrix, atol=1e-9)


def test_cross_map_finds_corresponding_layers():
    a = layers()
    b = {
        f"m{i}": x @ np.random.default_rng(i).normal(size=(16, 16))
        for i, x in enumerate(a.values())
    }
    matrix = np.array(cross_map(a, b, measure="cca").headline["matrix"])
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)  # invertible maps of each layer
    assert np.all(matrix.argmax(axis=1) == np.arange(4))


def test_map_bad_input():
    a = layers()
    short = {k: v[:-5] for k, v in a.items()}
    with pytest.raises(InputError, match="different numbers of rows"):
        cross_map(a, short)
    with pytest.raises(InputError, match="no site"):
        layer_map(a, sites=["l0", "nope"])
    with pytest.raises(InputError, match="reference step"):
        checkpoint_map({0: a, 1: a}, reference_step=5)


@pytest.mark.slow
def test_svcca_compression_on_a_small_lm(neox):
    """The projection is an oblique projector (idempotent); at the full SVCCA rank it keeps the
    model's loss, with one direction the loss rises (a random-init GPT-NeoX: mechanics only; the
    zoo finding is in the notebook)."""
    from analyses.similarity.compression import compression_curve, svcca_projection
    from workbench.hooks.capture import capture

    rng = np.random.default_rng(0)
    words = ["the", "cat", "dog", "sat", "ran", "on", "mat", "log", "big", "red", "and", "."]
    texts = [" ".join(rng.choice(words, size=12)) for _ in range(40)]
    acts = capture(neox, ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"], texts)
    site = "blocks.1.hook_resid_post"
    x, reference = acts.numpy(site), acts.numpy("blocks.2.hook_resid_post")
    kept = _cca.decompose(x.astype(np.float64)).top(0.99).rank
    _, p = svcca_projection(x, reference, 3)
    np.testing.assert_allclose(p @ p, p, atol=1e-8)
    assert np.linalg.matrix_rank(p, tol=1e-8) == 3
    with pytest.raises(InputError, match="k=999"):
        svcca_projection(x, reference, 999)
    curves = compression_curve(neox, site, texts, x, reference, [1, kept], variance=0.99).headline
    assert curves["svcca"][kept] == pytest.approx(curves["clean_loss"], abs=0.02)
    assert curves["pca"][kept] == pytest.approx(curves["clean_loss"], abs=0.02)
    assert abs(curves["svcca"][1] - curves["clean_loss"]) > 0.01
