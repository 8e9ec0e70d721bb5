"""Neural collapse: exact-ETF zeros, the isotropic-noise closed form, a straightforward two-pass
pinv reference, streaming = in memory, bad input, the CLI. The terminal phase on the digits zoo:
test_terminal_phase.py."""

import json

import numpy as np
import pytest

from analyses.neural_collapse.analyses import ANALYSIS, Params, collapse, nearest_class_mean, run
from workbench.analysis.registry import analyses
from workbench.analysis.sources import Source
from workbench.cli.main import main
from workbench.errors import InputError
from workbench.store import StoreWriter


def etf(c: int, d: int, seed: int = 0) -> np.ndarray:
    """(C, d) unit-norm simplex ETF rows (cosines -1/(C-1)) in a random C-dim subspace."""
    u, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, c)))
    return (np.sqrt(c / (c - 1)) * u @ (np.eye(c) - 1.0 / c)).T


def reference(h, y, w=None, b=None):
    """Papyan et al.'s definitions, computed the plain two-pass way (pinv, per-row NCC loop)."""
    classes = np.unique(y)
    c = len(classes)
    means = np.stack([h[y == k].mean(0) for k in classes])
    mu_g = means.mean(0)
    m = means - mu_g
    sw = sum((h[y == k] - means[k]).T @ (h[y == k] - means[k]) for k in classes) / len(h)
    sb = m.T @ m / c
    out = {"nc1": np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10)) / c}
    norms = np.linalg.norm(m, axis=1)
    out["nc2_equinorm"] = norms.std(ddof=1) / norms.mean()
    unit = m / norms[:, None]
    cos = (unit @ unit.T)[~np.eye(c, dtype=bool)]
    out["nc2_equiangular"] = cos.std(ddof=1)
    out["nc2_max_angle"] = np.abs(cos + 1 / (c - 1)).mean()
    if w is not None:
        out["nc3"] = np.sum((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2)
        disagree = 0
        for row in h:  # the per-sample loop of the reference Colab
            net = np.argmax(w @ row + b)
            ncc = np.argmin([np.linalg.norm(row - mu) for mu in means])
            disagree += net != ncc
        out["nc4"] = disagree / len(h)
    return out


def test_registered():
    assert analyses()["neural-collapse"] is ANALYSIS
    assert ANALYSIS.inputs == ("acts", "labels")


def test_exact_simplex_etf_gives_zero_everywhere():
    c, d = 10, 32
    vertices = etf(c, d)
    shift = np.random.default_rng(1).normal(size=d) * 5
    y = np.repeat(np.arange(c), 40)
    h = vertices[y] + shift
    w = vertices.copy()  # self-dual classifier
    b = -w @ shift
    source = Source(acts=h, labels=y, weights=np.hstack([w, b[:, None]]))
    out = run(source, Params()).headline
    for key in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc2_max_angle", "nc3", "nc4"):
        assert abs(out[key]) < 1e-12, (key, out[key])
    for key in ("nc2_equinorm_weights", "nc2_equiangular_weights", "nc2_max_angle_weights"):
        assert abs(out[key]) < 1e-12, (key, out[key])
    assert out["net_accuracy"] == out["ncc_accuracy"] == 1.0


@pytest.mark.parametrize("c,sigma", [(10, 0.1), (4, 0.3)])
def test_isotropic_noise_matches_closed_form(c, sigma):
    d, n = 24, 3000
    rng = np.random.default_rng(c)
    y = np.repeat(np.arange(c), n)
    h = etf(c, d, seed=c)[y] + rng.normal(scale=sigma, size=(len(y), d))
    got = collapse([h], y)["nc1"]
    expected = sigma**2 * (c - 1) ** 2 / c  # derivation in the module docstring
    assert got == pytest.approx(expected, rel=0.03)


def test_matches_two_pass_reference_on_imbalanced_data():
    rng = np.random.default_rng(3)
    c, d = 5, 12
    y = rng.choice(c, size=700, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    h = rng.normal(size=(c, d))[y] * 2 + rng.normal(size=(700, d)) + 7.0
    w, b = rng.normal(size=(c, d)), rng.normal(size=c)
    got = collapse([h[i : i + 64] for i in range(0, 700, 64)], y, w, b)
    want = reference(h, y, w, b)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_streaming_equals_in_memory_and_store_equals_array(tmp_path):
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 500)
    h = (rng.normal(size=(3, 16))[y] + rng.normal(size=(500, 16))).astype(np.float32)
    w = rng.normal(size=(3, 16))
    whole = collapse([h], y, w)
    streamed = collapse([h[i : i + 7] for i in range(0, 500, 7)], y, w)
    for key in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc3", "nc4"):
        assert streamed[key] == pytest.approx(whole[key], rel=1e-10)
    writer = StoreWriter(tmp_path / "s", {"test": "nc"})
    for a, b in ((0, 180), (180, 500)):
        writer.append(
            {"feat": h[a:b]},
            token_ids=None,
            example_index=np.arange(a, b),
            position=None,
            example_labels={"digit": y[a:b]},
        )
    store = writer.finalize()
    from_store = run(Source.from_store(store, "feat", "digit"), Params(batch_size=50)).headline
    from_array = run(Source(acts=h, labels=y), Params()).headline
    assert from_store["nc1"] == pytest.approx(from_array["nc1"], rel=1e-10)
    assert "nc3" not in from_store and "nc4" not in from_store


def test_nearest_class_mean_is_vectorised_argmin_distance():
    rng = np.random.default_rng(5)
    h, means = rng.normal(size=(200, 6)), rng.normal(size=(4, 6))
    loop = [np.argmin(np.linalg.norm(means - row, axis=1)) for row in h]
    assert nearest_class_mean(h, means).tolist() == loop


def test_negative_labels_are_skipped():
    rng = np.random.default_rng(6)
    y = np.repeat([0, 1, 2], 50)
    h = rng.normal(size=(3, 5))[y] + rng.normal(size=(150, 5)) * 0.1
    noisy = np.vstack([h, rng.normal(size=(20, 5)) * 50])
    labels = np.r_[y, np.full(20, -1)]
    assert collapse([noisy], labels)["nc1"] == pytest.approx(collapse([h], y)["nc1"])


@pytest.mark.parametrize(
    "labels,weights,n_classes,match",
    [
        (np.repeat([0, 2], 10), None, 3, r"class\(es\) \[1\] have no rows"),
        (np.repeat([0, 2], 10), np.ones((3, 4)), 0, r"class\(es\) \[1\] have no rows"),
        (np.zeros(20, int), None, 0, "needs >= 2 classes"),
        (np.repeat([0, 1], 5), None, 0, "labels have 10 rows, features at least 20"),
        (np.repeat([0, 1], 15), None, 0, "labels have 30 rows, features 20; they must match"),
        (np.repeat([0, 1], 10), np.ones((2, 5, 1)), 0, r"valid: \(classes, 4\) or \(classes, 5\)"),
        (np.repeat([0, 1], 10), np.ones((2, 7)), 0, r"shape \(2, 7\)"),
        (np.repeat([0, 3], 10), np.ones((2, 4)), 0, "label 3 is out of range; valid: 0..1"),
        (np.linspace(0, 1, 20), None, 0, "integer class labels"),
    ],
)
def test_bad_input(labels, weights, n_classes, match):
    h = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(InputError, match=match):
        collapse([h], labels, weights, n_classes=n_classes)


def test_one_shot_iterator_needs_a_second_pass_for_nc4():
    rng = np.random.default_rng(8)
    y = np.repeat([0, 1], 20)
    h = rng.normal(size=(2, 3))[y] + rng.normal(size=(40, 3))
    w = rng.normal(size=(2, 3))
    with pytest.raises(InputError, match="NC4 reads the rows twice"):
        collapse(iter([h]), y, w)
    got = collapse(iter([h[:25], h[25:]]), y, w, second_pass=iter([h]))
    assert got["nc4"] == pytest.approx(collapse([h], y, w)["nc4"])
    with pytest.raises(InputError, match="the second pass gave 25 rows"):
        collapse([h], y, w, second_pass=[h[:25]])


def test_cli_json_with_and_without_classifier(tmp_path, capsys):
    c, d = 4, 8
    y = np.repeat(np.arange(c), 30)
    h = etf(c, d)[y] + np.random.default_rng(7).normal(scale=0.2, size=(len(y), d))
    np.save(tmp_path / "h.npy", h)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "w.npy", etf(c, d))
    args = ["analyze", "neural-collapse", "--acts", str(tmp_path / "h.npy")]
    args += ["--labels", str(tmp_path / "y.npy"), "--json"]
    assert main([*args, "--weights", str(tmp_path / "w.npy")]) == 0
    full = json.loads(capsys.readouterr().out)
    assert {"nc1", "nc2_equinorm", "nc2_equiangular", "nc3", "nc4"} <= set(full)
    assert full["nc1"] == pytest.approx(0.04 * (c - 1) ** 2 / c, rel=0.3)
    assert full["nc4"] < 0.05
    assert main(args) == 0
    bare = json.loads(capsys.readouterr().out)
    assert {"nc1", "nc2_equinorm", "nc2_equiangular"} <= set(bare)
    assert "nc3" not in bare and "nc4" not in bare
    assert bare["nc1"] == pytest.approx(full["nc1"])
