"""Steering: vectors, extraction, application (positions, modes, padding, KV cache, scoping),
measurement and bad input. Mechanics on a small GPT-NeoX and a plain MLP; findings on the zoo
are in test_steering_zoo.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.steering import SteeringVector, extract, generate, measure, steer
from analyses.steering.apply import SteeringEdit
from workbench.errors import InputError, UnknownSiteError
from workbench.hooks.capture import capture

SITE = "blocks.1.hook_resid_pre"
PROMPTS = ["the cat sat", "a dog ran on the mat", "the bird"]


def _vec(d: int = 64, seed: int = 0, site: str = SITE) -> SteeringVector:
    return SteeringVector(torch.randn(d, generator=torch.Generator().manual_seed(seed)), site, "t")


def test_vector_round_trip_and_control(tmp_path):
    v = SteeringVector(torch.arange(1.0, 5.0), "s", "mean-diff", {"model": "m", "step": 3})
    path = v.save(tmp_path / "v")
    back = SteeringVector.load(path)
    assert torch.equal(back.vector, v.vector)
    assert (back.site, back.method, back.provenance) == (
        "s",
        "mean-diff",
        {"model": "m", "step": 3},
    )
    control = v.random_control(seed=1)
    assert control.norm == pytest.approx(v.norm, rel=1e-6)
    assert abs(float(control.unit() @ v.unit())) < 0.99
    assert torch.equal(control.vector, v.random_control(seed=1).vector)


@pytest.mark.parametrize(
    "bad,match",
    [(torch.zeros(4), "zero vector"), (torch.tensor([1.0, float("nan")]), "NaN"),
     (torch.ones(2, 2, 2), r"\(d,\) or \(T, d\)")],
)  # fmt: skip
def test_bad_vectors(bad, match):
    with pytest.raises(InputError, match=match):
        SteeringVector(bad, "s", "t")


def test_missing_vector_file(tmp_path):
    with pytest.raises(InputError, match="no steering vector"):
        SteeringVector.load(tmp_path / "nope.safetensors")


def _resid(handle, prompts, site=SITE):
    return capture(handle, site, prompts, positions=None)[site]


def test_coefficient_zero_and_scoping(neox):
    before = neox.run(neox.prepare(PROMPTS)).clone()
    with steer(neox, _vec(), 0.0):
        assert torch.equal(neox.run(neox.prepare(PROMPTS)), before)
    with steer(neox, _vec(), 5.0):
        assert not torch.allclose(neox.run(neox.prepare(PROMPTS)), before)
    assert torch.equal(neox.run(neox.prepare(PROMPTS)), before)  # exactly as before


def test_add_project_out_and_cap_are_exact(neox):
    v = _vec()
    u = v.unit()
    downstream = "blocks.1.hook_resid_pre"
    clean = _resid(neox, PROMPTS, downstream)
    with steer(neox, v, 2.5):
        added = _resid(neox, PROMPTS, downstream)
    assert torch.allclose(added - clean, 2.5 * v.vector.expand_as(clean), atol=1e-5)
    with steer(neox, v, 2.5, scale=10.0):
        scaled = _resid(neox, PROMPTS, downstream)
    assert torch.allclose(scaled - clean, 25.0 * u.expand_as(clean), atol=1e-4)
    with steer(neox, v, mode="project-out"):
        ablated = _resid(neox, PROMPTS, downstream)
    assert float((ablated @ u).abs().max()) < 1e-5
    cap = float((clean @ u).median())
    with steer(neox, v, cap, mode="cap"):
        capped = _resid(neox, PROMPTS, downstream)
    assert float((capped @ u).max()) <= cap + 1e-5
    keep = (clean @ u) <= cap
    assert torch.allclose(capped[keep], clean[keep], atol=1e-5)


def test_after_prompt_touches_only_generated_positions(neox):
    batch = neox.prepare(PROMPTS)
    length = batch.input_ids.shape[1]
    clean = _resid(neox, batch)
    with steer(neox, _vec(), 3.0, where="after", batch=batch):
        same = _resid(neox, batch)
    assert torch.equal(same, clean)  # the prompt itself is untouched
    _, plain = generate(neox, PROMPTS, None, max_new_tokens=6)
    _, zero = generate(neox, PROMPTS, _vec(), 0.0, max_new_tokens=6)
    _, steered = generate(neox, PROMPTS, _vec(), 40.0, max_new_tokens=6)
    assert torch.equal(plain, zero)
    assert torch.equal(steered[:, :length], plain[:, :length])
    assert not torch.equal(steered, plain)


@pytest.mark.parametrize("where", ["all", "after", "front"])
def test_kv_cache_gives_identical_tokens_under_steering(neox, where):
    v = extract.actadd(neox, "the cat", "a dog ran", SITE) if where == "front" else _vec()
    coeff = 4.0 if where == "front" else 30.0
    _, cached = generate(neox, PROMPTS, v, coeff, where=where, max_new_tokens=8, use_cache=True)
    _, uncached = generate(neox, PROMPTS, v, coeff, where=where, max_new_tokens=8, use_cache=False)
    assert torch.equal(cached, uncached)


def test_left_padding_equals_one_by_one(neox):
    v = extract.actadd(neox, "the cat sat on", "a dog", SITE)
    _, batched = generate(neox, PROMPTS, v, 3.0, where="front", max_new_tokens=5)
    for i, prompt in enumerate(PROMPTS):
        _, alone = generate(neox, [prompt], v, 3.0, where="front", max_new_tokens=5)
        n = alone.shape[1]
        assert torch.equal(batched[i, -n:], alone[0])


def test_actadd_front_adds_at_first_real_tokens(neox):
    v = extract.actadd(neox, "the cat sat", "a dog", SITE)
    assert v.vector.shape[0] == 4  # BOS + 3 words; the shorter prompt is zero-padded
    batch = neox.prepare(PROMPTS)
    clean = _resid(neox, batch)
    with steer(neox, v, 1.0, where="front", batch=batch):
        steered = _resid(neox, batch)
    pad = (batch.attention_mask == 0).sum(1)
    for row in range(len(PROMPTS)):
        start = int(pad[row])
        stop = min(start + 4, batch.input_ids.shape[1])
        delta = steered[row] - clean[row]
        assert torch.allclose(delta[start:stop], v.vector[: stop - start], atol=1e-5)
        assert float(delta[:start].abs().sum()) == 0.0
        assert float(delta[stop:].abs().sum()) == 0.0


def test_per_row_coefficients_equal_separate_runs(neox):
    v = _vec()
    batch = neox.prepare(PROMPTS * 2)
    with steer(neox, v, [0.0] * 3 + [2.0] * 3):
        both = neox.run(batch)
    with steer(neox, v, 2.0):
        two = neox.run(neox.prepare(PROMPTS))
    assert torch.allclose(both[3:], two, atol=1e-5)
    assert torch.allclose(both[:3], neox.run(neox.prepare(PROMPTS)), atol=1e-5)


def test_extract_mean_difference_and_pca(neox):
    pos, neg = ["the cat sat", "the cat ran"], ["a dog sat", "a dog ran"]
    md = extract.mean_difference(neox, pos, neg, SITE, read="last")
    a = extract.read_site(neox, pos, SITE, "last")
    b = extract.read_site(neox, neg, SITE, "last")
    assert torch.allclose(md.vector, a.mean(0) - b.mean(0), atol=1e-6)
    assert md.provenance["read"] == "last" and md.provenance["model"]
    pca = extract.pca_difference(neox, pos * 2, neg * 2, SITE, read="mean")
    assert float(pca.vector @ (a - b).mean(0)) != 0.0
    with pytest.raises(InputError, match="needs pairs: got 2 positive and 1 negative"):
        extract.pca_difference(neox, pos, neg[:1], SITE)
    with pytest.raises(InputError, match="read='middle'; valid"):
        extract.read_site(neox, pos, SITE, "middle")


def test_typical_norm(neox):
    rows = capture(neox, SITE, PROMPTS, positions="all")[SITE]
    expected = float(rows.norm(dim=-1).mean())
    assert extract.typical_norm(neox, PROMPTS, SITE) == pytest.approx(expected, rel=1e-6)


def test_pca_of_planted_differences_recovers_direction(mlp):
    handle = mlp
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=gen)
    direction = torch.zeros(8)
    direction[2] = 1.0
    strength = 1.0 + 4.0 * torch.rand(200, 1, generator=gen)  # pairs differ by s_i * direction
    v = extract.pca_difference(handle, x + strength * direction, x, "fc1", read="last")
    expected = handle.model.fc1.weight.detach() @ direction  # fc1 is linear
    cos = float(v.unit() @ expected / expected.norm())
    assert cos == pytest.approx(1.0, abs=1e-5)


def test_from_store_matches_in_memory(tmp_path):
    from workbench.store import StoreWriter

    rng = np.random.default_rng(0)
    acts = rng.normal(size=(40, 6)).astype(np.float32)
    labels = np.arange(40) % 2
    writer = StoreWriter(tmp_path / "s", {"model": "m", "sites": ["x"]})
    writer.append({"x": acts}, None, np.arange(40), None, row_labels={"y": labels})
    store = writer.finalize()
    v = extract.from_store(store, "x", "y", 1, 0, batch_size=7)
    expected = acts[labels == 1].mean(0) - acts[labels == 0].mean(0)
    assert np.allclose(v.vector.numpy(), expected, atol=1e-6)
    with pytest.raises(InputError, match="no row has y=5"):
        extract.from_store(store, "x", "y", 5, 0)


def test_bad_site_and_width(neox):
    missing = _vec(site="blocks.9.hook_resid_pre")
    with (
        pytest.raises(UnknownSiteError, match="no site 'blocks.9.hook_resid_pre'"),
        steer(neox, missing, 1.0),
    ):
        pass
    narrow = SteeringVector(torch.ones(5), SITE, "t")
    with pytest.raises(InputError, match="width 5 but site"), steer(neox, narrow, 1.0):
        neox.run(neox.prepare(PROMPTS))
    with pytest.raises(InputError, match="needs the prompt"):
        SteeringEdit(_vec(), torch.tensor(1.0), where="after")
    with pytest.raises(InputError, match="where='middle'; valid"):
        SteeringEdit(_vec(), torch.tensor(1.0), where="middle")


def test_measures_and_sweep_have_controls(neox):
    tok = neox.tokenizer
    target = [tok.convert_tokens_to_ids("cat")]
    v = extract.mean_difference(neox, ["the cat", "a cat"], ["the dog", "a dog"], SITE)
    frame = measure.sweep(
        lambda vec: measure.lm_behaviour(neox, vec, [0.0, 5.0], PROMPTS, target, max_new_tokens=3),
        [v],
        controls=2,
    )
    assert set(frame.direction) == {"concept", "random"}
    assert set(frame.control) == {-1, 0, 1}
    mass = frame[(frame.metric == "target_mass") & (frame.coeff == 0.0)].value
    assert np.allclose(mass, mass.iloc[0])  # coefficient 0: every direction is the baseline
    coll = measure.lm_collateral(neox, v, [0.0, 5.0], PROMPTS)
    kl = coll[coll.metric == "kl"].set_index("coeff").value
    assert abs(kl[0.0]) < 1e-6 and kl[5.0] > 0


def test_probe_direction_as_vector(tmp_path):
    from probes.directions import save_direction

    path = save_direction(tmp_path / "d.safetensors", np.array([3.0, 4.0]), "s", "topic", 2)
    v = extract.from_probe(str(path))
    assert torch.allclose(v.vector, torch.tensor([3.0, 4.0]))
    assert (v.site, v.method, v.provenance["label"]) == ("s", "probe", "topic")
    with pytest.raises(InputError, match="no probe direction"):
        extract.from_probe(str(tmp_path / "missing.safetensors"))
