"""Anisotropy, effective rank, sparsity (closed forms, planted units, store input, CLI) and the
curves over layers and checkpoints."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from analyses.geometry.analyses import (
    ANALYSES,
    AnisotropyParams,
    EffectiveRankParams,
    SparsityParams,
    effective_rank_from_singular_values,
    mean_cosine_all_pairs,
    run_anisotropy,
    run_effective_rank,
    run_sparsity,
)
from analyses.geometry.curves import (
    capture_series,
    curves_result,
    is_activation_site,
    series_curves,
    store_curves,
)
from workbench.analysis.registry import analyses
from workbench.analysis.results import Result
from workbench.analysis.sources import Source
from workbench.cli.main import main
from workbench.errors import InputError
from workbench.store import StoreWriter


def make_store(path, acts: dict[str, np.ndarray], step=None, chunks=3):
    n = len(next(iter(acts.values())))
    writer = StoreWriter(path, {"test": "geometry", "checkpoint_step": step})
    for rows in np.array_split(np.arange(n), chunks):
        writer.append(
            {k: v[rows].astype(np.float32) for k, v in acts.items()},
            token_ids=None,
            example_index=rows,
            position=None,
        )
    return writer.finalize()


def test_registered():
    found = analyses()
    assert [found[a.name] for a in ANALYSES] == ANALYSES


def equicorrelated(n: int, rho: float) -> np.ndarray:
    """Rows sqrt(rho) e_0 + sqrt(1 - rho) e_i (i = 1..n): every pair has cosine exactly rho."""
    x = np.zeros((n, n + 1))
    x[:, 0] = np.sqrt(rho)
    x[np.arange(n), np.arange(1, n + 1)] = np.sqrt(1 - rho)
    return x


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.9])
def test_anisotropy_closed_form(rho):
    x = equicorrelated(300, rho) * np.random.default_rng(0).uniform(0.5, 4, size=(300, 1))
    head = run_anisotropy(Source(acts=x), AnisotropyParams(n_pairs=5000)).headline
    assert head["anisotropy"] == pytest.approx(rho, abs=1e-12)
    assert head["anisotropy_all_pairs"] == pytest.approx(rho, abs=1e-12)


def test_anisotropy_identity_and_sampling():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 16)) + rng.normal(size=16)  # a common offset: anisotropic
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = u @ u.T
    brute = (cos.sum() - np.trace(cos)) / (400 * 399)
    assert mean_cosine_all_pairs(x) == pytest.approx(brute, rel=1e-12)
    sampled = [
        run_anisotropy(Source(acts=x), AnisotropyParams(n_pairs=20000, seed=s)).headline
        for s in (0, 1)
    ]
    off = cos[~np.eye(400, dtype=bool)]
    se = off.std() / np.sqrt(20000)
    assert sampled[0]["anisotropy"] != sampled[1]["anisotropy"]
    for head in sampled:
        assert abs(head["anisotropy"] - brute) < 5 * se
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    rotated = run_anisotropy(Source(acts=x @ q), AnisotropyParams()).headline
    assert rotated["anisotropy"] == pytest.approx(sampled[0]["anisotropy"], rel=1e-9)


def test_anisotropy_zero_rows_and_bad_input():
    x = np.random.default_rng(2).normal(size=(50, 4))
    x[[3, 9]] = 0
    head = run_anisotropy(Source(acts=x), AnisotropyParams()).headline
    assert head["n_zero_rows"] == 2 and head["n_samples"] == 48
    with pytest.raises(InputError, match="n_pairs=0"):
        run_anisotropy(Source(acts=x), AnisotropyParams(n_pairs=0))
    x[5, 1] = np.inf
    with pytest.raises(InputError, match="row 5, column 1"):
        run_anisotropy(Source(acts=x), AnisotropyParams())


def test_effective_rank_closed_forms(tmp_path):
    rng = np.random.default_rng(3)
    s = np.array([5.0, 3.0, 1.0, 0.5, 0.0])
    u, _ = np.linalg.qr(rng.normal(size=(200, 5)))
    v, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    x = (u * s) @ v.T
    p = s[s > 0] / s.sum()
    expected = np.exp(-(p * np.log(p)).sum())
    head = run_effective_rank(Source(acts=x), EffectiveRankParams()).headline
    assert head["effective_rank"] == pytest.approx(expected, rel=1e-8)
    assert head["effective_rank_ratio"] == pytest.approx(expected / 5, rel=1e-8)
    # all singular values equal -> full rank; rank one -> 1
    assert run_effective_rank(Source(acts=u * 2.0), EffectiveRankParams()).headline[
        "effective_rank"
    ] == pytest.approx(5.0, rel=1e-9)
    assert effective_rank_from_singular_values(np.array([3.0, 0, 0])) == 1.0
    # centring: a constant offset plus one direction is rank 2 raw, rank 1 centred
    t = rng.normal(size=(300, 1))
    y = np.ones((300, 1)) @ rng.normal(size=(1, 6)) + t @ rng.normal(size=(1, 6))
    centred = run_effective_rank(Source(acts=y), EffectiveRankParams(center=True)).headline
    assert centred["effective_rank"] == pytest.approx(1.0, abs=1e-4)
    assert (
        run_effective_rank(Source(acts=y), EffectiveRankParams()).headline["effective_rank"] > 1.05
    )
    # streamed from a store chunk by chunk = one pass over the array
    store = make_store(tmp_path / "s", {"layer": x})
    from_store = run_effective_rank(Source.from_store(store, "layer"), EffectiveRankParams())
    assert from_store.headline["effective_rank"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(InputError, match="zero"):
        effective_rank_from_singular_values(np.zeros(3))


def planted_units(n: int = 4000, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """ReLU-like units: unit j active with probability p_j; unit 0 dead, unit 1 always on."""
    rng = np.random.default_rng(seed)
    p = np.array([0.0, 1.0, 0.5, 0.1, 0.9, 0.02])
    active = rng.uniform(size=(n, len(p))) < p
    return np.where(active, rng.uniform(0.1, 3, size=active.shape), 0.0), active


def test_sparsity_planted_units(tmp_path):
    x, active = planted_units()
    store = make_store(tmp_path / "s", {"blocks.0.mlp.hook_post": x})
    result = run_sparsity(Source.from_store(store, "blocks.0.mlp.hook_post"), SparsityParams())
    head = result.headline
    assert head["fraction_active"] == pytest.approx(active.mean(), abs=1e-12)
    assert head["n_dead"] == 1 and head["dead_units"] == [0]
    assert head["n_always_on"] == 1 and head["always_on_fraction"] == pytest.approx(1 / 6)
    units = result.frame[result.frame["metric"] == "unit_fraction_active"]
    np.testing.assert_allclose(units["value"], active.mean(axis=0))
    assert list(units["unit"]) == list(range(6))
    # rule and threshold: negative values count only as "nonzero"; a threshold drops small ones
    neg = -x
    pos = run_sparsity(Source(acts=neg), SparsityParams()).headline
    nonzero = run_sparsity(Source(acts=neg), SparsityParams(rule="nonzero")).headline
    assert pos["fraction_active"] == 0 and pos["n_dead"] == 6
    assert nonzero["fraction_active"] == pytest.approx(active.mean())
    high = run_sparsity(Source(acts=x), SparsityParams(threshold=1.0)).headline
    assert high["fraction_active"] == pytest.approx((x > 1.0).mean())
    with pytest.raises(InputError, match="rule='relu'"):
        run_sparsity(Source(acts=x), SparsityParams(rule="relu"))


def _cli_json(capsys, args):
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_json(tmp_path, capsys):
    x, active = planted_units(500)
    path = tmp_path / "a.npy"
    np.save(path, x)
    spars = _cli_json(capsys, ["analyze", "sparsity", "--acts", str(path), "--json"])
    assert spars["fraction_active"] == pytest.approx(active.mean())
    assert spars["settings"] == {"threshold": 0.0, "rule": "positive"}
    erank = _cli_json(capsys, ["analyze", "effective-rank", "--acts", str(path), "--json"])
    sigma = np.linalg.svd(x, compute_uv=False)
    assert erank["effective_rank"] == pytest.approx(
        effective_rank_from_singular_values(sigma), rel=1e-8
    )
    aniso = _cli_json(
        capsys,
        ["analyze", "anisotropy", "--acts", str(path), "--set", "n_pairs=100", "--json"],
    )
    assert aniso["settings"]["n_pairs"] == 100 and -1 <= aniso["anisotropy"] <= 1


def test_store_curves_over_layers_and_checkpoints(tmp_path):
    rng = np.random.default_rng(5)
    stores = []
    for step, dim in ((0, 2), (10, 4)):
        latent = rng.normal(size=(1200, dim))
        acts = {
            "blocks.0.hook_resid_post": latent @ rng.normal(size=(dim, 20)),
            "blocks.1.mlp.hook_post": np.maximum(latent @ rng.normal(size=(dim, 30)), 0),
        }
        stores.append(make_store(tmp_path / f"step{step}", acts, step=step))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = store_curves(stores, params={"twonn": {"max_samples": 0}})
    assert list(frame.columns) == [
        "checkpoint_step",
        "store",
        "site",
        "layer",
        "analysis",
        "metric",
        "value",
    ]
    assert set(frame["checkpoint_step"]) == {0, 10} and set(frame["layer"]) == {0, 1}
    twonn = frame[(frame["analysis"] == "twonn") & (frame["layer"] == 0)]
    assert twonn.set_index("checkpoint_step")["value"].round().to_dict() == {0: 2, 10: 4}
    sparsity_sites = set(frame.loc[frame["analysis"] == "sparsity", "site"])
    assert sparsity_sites == {"blocks.1.mlp.hook_post"}
    result = curves_result(frame)
    loaded = Result.load(result.save(tmp_path / "curves"))
    assert loaded.headline["checkpoint_steps"] == [0, 10]
    assert len(loaded.frame) == len(frame)
    with pytest.raises(InputError, match="unknown curve analyses"):
        store_curves(stores, analyses=["twonn", "nope"])


def test_activation_site_names():
    assert is_activation_site("blocks.3.mlp.hook_post") and is_activation_site("act2")
    assert not is_activation_site("blocks.3.hook_resid_post") and not is_activation_site("fc1")


@pytest.mark.slow
def test_series_curves_on_a_zoo_checkpoint_series(tmp_path):
    from workbench import zoo
    from workbench.data import load_dataset

    zoo.build("digits-mlp", tmp_path / "zoo", quick=True)
    series = zoo.load_series("digits-mlp", tmp_path / "zoo")
    steps = [series.steps[0], series.steps[-1]]
    examples = load_dataset("digits", 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = series_curves(
            series,
            examples,
            "act1,act2",
            tmp_path / "runs",
            steps,
            analyses=["twonn", "sparsity"],
            dataset="digits",
        )
        stores = capture_series(
            series, examples, "act1,act2", tmp_path / "runs", steps, dataset="digits"
        )
        again = store_curves(stores, ["twonn", "sparsity"])
    assert sorted(set(frame["checkpoint_step"])) == steps
    assert set(frame["site"]) == {"act1", "act2"}
    np.testing.assert_allclose(frame["value"], again["value"])  # finished stores are reused
    # training changes the geometry: the ReLU units' activity is not the same as at init
    act = frame[(frame["metric"] == "fraction_active") & (frame["site"] == "act2")]
    assert act["value"].nunique() == 2
