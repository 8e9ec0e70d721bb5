"""Intrinsic dimension of objective landscapes (Li, Farkhoor, Liu & Yosinski 2018): projections,
subspace wrapper, d_int rule, the paper's toy problem, the zoo finding, the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

from analyses.landscape.projections import (
    DenseProjection,
    FastfoodProjection,
    dense_nbytes,
    fwht_,
    make_projection,
)
from analyses.landscape.subspace import SubspaceModel
from analyses.landscape.sweep import (
    TrainConfig,
    d_int,
    intrinsic_dimension,
    train_direct,
    train_subspace,
)
from analyses.landscape.tasks import Task, zoo_model
from workbench.analysis.results import Result
from workbench.cli.main import main
from workbench.errors import InputError

KINDS = ["dense", "sparse", "fastfood"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models train fastest on one thread (as `intrinsic_dimension` does by default)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hadamard(L: int) -> torch.Tensor:
    H = torch.ones(1, 1, dtype=torch.float64)
    while H.shape[0] < L:
        H = torch.kron(H, torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64))
    return H


@pytest.mark.parametrize("L", [1, 2, 8, 32, 64, 2048])
def test_fwht_is_the_unnormalised_hadamard_transform(L):
    x = torch.randn(3, L, dtype=torch.float64)
    expected = x @ hadamard(L)
    out = fwht_(x)
    assert out.data_ptr() == x.data_ptr()  # in place
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_projection_and_its_gradient_match_the_matrix(kind):
    P = make_projection(kind, 7, 300, seed=3, dtype=torch.float64)
    M = P.matrix()
    assert M.shape == (300, 7)
    theta = torch.randn(7, dtype=torch.float64, requires_grad=True)
    y = P @ theta
    torch.testing.assert_close(y, M @ theta.detach(), rtol=0, atol=1e-12)
    g = torch.randn(300, dtype=torch.float64)
    (y * g).sum().backward()
    torch.testing.assert_close(theta.grad, M.T @ g, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda t: P @ t, (torch.randn(7, dtype=torch.float64, requires_grad=True),)
    )


def test_column_norms():
    """METHODS.md 1.4: Fastfood's expected column norm is 1; the numpy port gives 0.986-1.014
    at D = 3000, d = 50. Dense and sparse columns are normalised exactly."""
    norms = FastfoodProjection(50, 3000, seed=0, dtype=torch.float64).column_norms()
    assert float(norms.min()) > 0.97 and float(norms.max()) < 1.03
    assert abs(float(norms.mean()) - 1.0) < 0.01
    for kind in ("dense", "sparse"):
        exact = make_projection(kind, 50, 3000, seed=0, dtype=torch.float64).column_norms()
        torch.testing.assert_close(exact, torch.ones(50, dtype=torch.float64))


def test_sparse_density_is_one_over_sqrt_D():
    P = make_projection("sparse", 200, 10_000, seed=1)
    nnz_per_column = len(P.values) / 200
    assert 100 * 0.9 < nnz_per_column < 100 * 1.1  # sqrt(10_000) = 100 expected


@pytest.mark.parametrize("kind", KINDS)
def test_projections_are_deterministic_by_seed(kind):
    a = make_projection(kind, 20, 500, seed=5).matrix()
    b = make_projection(kind, 20, 500, seed=5).matrix()
    c = make_projection(kind, 20, 500, seed=6).matrix()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_dense_columns_do_not_depend_on_d():
    small = DenseProjection(5, 400, seed=2).matrix()
    large = DenseProjection(30, 400, seed=2).matrix()
    assert torch.equal(small, large[:, :5])


def test_fastfood_memory_is_order_D_and_dense_is_order_dD():
    D = 26_122
    sizes = {d: FastfoodProjection(d, D).nbytes() for d in (10, 1000, D)}
    assert len(set(sizes.values())) == 1  # independent of d
    assert sizes[10] <= 3 * 8 * 32_768  # B, G float32 + Pi int64 over L = 2^15
    assert DenseProjection(100, D).nbytes() == dense_nbytes(100, D) == 4 * 100 * D


# ---- the paper's toy problem (section 2): D = 1000, group g of 100 entries must sum to g ----


def toy_system() -> tuple[torch.Tensor, torch.Tensor]:
    A = torch.zeros(10, 1000, dtype=torch.float64)
    for g in range(10):
        A[g, 100 * g : 100 * (g + 1)] = 1.0
    return A, torch.arange(1, 11, dtype=torch.float64)


def toy_min_loss(kind: str, d: int, seed: int) -> float:
    """Exact least squares in the subspace: min_theta_d ||A (theta_0 + P theta_d) - b||^2,
    theta_0 = 0."""
    A, b = toy_system()
    M = A @ make_projection(kind, d, 1000, seed=seed, dtype=torch.float64).matrix()
    solution = torch.linalg.lstsq(M, b[:, None], driver="gelsd").solution[:, 0]
    return float(((M @ solution - b) ** 2).sum())


@pytest.mark.parametrize("kind", ["dense", "fastfood"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_toy_intrinsic_dimension_is_exactly_10(kind, seed):
    losses = {d: toy_min_loss(kind, d, seed) for d in range(1, 15)}
    assert all(losses[d] > 1.0 for d in range(1, 10)), losses
    assert all(losses[d] < 1e-20 for d in range(10, 15)), losses
    assert min(d for d, loss in losses.items() if loss < 1e-20) == 10


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta.view(10, 100).sum(1).expand(len(x), 10)


def toy_task() -> Task:
    y, x = torch.arange(1.0, 11.0)[None], torch.zeros(1, 1)
    return Task(
        (x, y),
        (x, y),
        loss=lambda out, t: ((out - t) ** 2).sum(-1).mean(),
        score=lambda out, t: torch.exp(-((out - t) ** 2).sum(-1)),  # 1 when solved
        metric="exp_neg_loss",
        name="toy",
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dense", "fastfood"])
def test_toy_trained_through_the_sweep_gives_d_int90_of_10(kind):
    config = TrainConfig(epochs=2, batch_size=1, lr=1.0, optimizer="lbfgs")
    result = intrinsic_dimension(
        Toy, toy_task(), [9, 10], kind, config=config, baseline="global", progress=False
    )
    assert result.headline["D"] == 1000 and result.headline["baseline"] == 1.0
    assert result.headline["d_int90"] == 10, result.headline["mean_by_d"]
    losses = result.frame.query("metric == 'train_loss'").set_index("d")["value"]
    assert losses[9] > 1.0 and losses[10] < 1e-4


# ---- the wrapper: any nn.Module, d = D matches direct training ----


def small_task(n_train: int = 300) -> Task:
    full = zoo_model("digits-mlp")[1]
    (x, y), test = full.train, full.test
    return Task((x[:n_train], y[:n_train]), test, name="digits-small")


def linear() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def test_identity_subspace_training_is_direct_training():
    """P = I: theta_0 + theta_d follows the same Adam trajectory as training theta directly."""
    config = TrainConfig(epochs=3, lr=0.01, direct_lr=0.01)
    task = small_task()
    direct = train_direct(linear, task, seed=4, config=config)
    subspace = train_subspace(linear, task, 650, "identity", seed=4, config=config)
    for key, value in direct.items():
        assert subspace[key] == pytest.approx(value, abs=1e-5), key


def test_dense_subspace_with_d_equal_D_matches_direct_training():
    config = TrainConfig(epochs=20, lr=0.01, direct_lr=0.01)
    task = small_task(1347)
    direct = train_direct(linear, task, seed=0, config=config)["test_accuracy"]
    dense = train_subspace(linear, task, 650, "dense", seed=0, config=config)["test_accuracy"]
    assert direct > 0.9
    assert abs(dense - direct) < 0.03, (dense, direct)


def test_wrapper_leaves_the_module_alone_and_trains_only_theta_d():
    torch.manual_seed(0)
    cnn = zoo_model("digits-cnn")[0]()
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    wrapped = SubspaceModel(cnn, d=40, projection="fastfood", seed=1)
    assert wrapped.D == 6090 and wrapped.d == 40
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(wrapped(x), cnn(x))  # theta_d = 0: the module itself
    opt = torch.optim.Adam(wrapped.trainable_parameters(), lr=0.05)
    for _ in range(3):
        loss = wrapped(x).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None for p in cnn.parameters())
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())
    assert float(wrapped.theta_d.detach().abs().sum()) > 0
    fresh = zoo_model("digits-cnn")[0]()
    fresh.load_state_dict(wrapped.merged_state_dict())
    torch.testing.assert_close(fresh(x), wrapped(x))


# ---- the d_int rule ----


def test_d_int_is_the_first_d_strictly_above_the_threshold():
    means = pd.Series({10: 0.5, 50: 0.9, 100: 0.95, 200: 0.85, 400: 1.0})
    assert d_int(means, 1.0, 0.9) == 100  # 0.9 is not strictly greater than 0.9 x 1.0
    assert d_int(means, 1.0, 1.0) == 400  # d_int100: reaches the baseline
    assert d_int(means, 0.6, 0.9) == 50  # 0.9 > 0.54, 0.5 is not
    assert d_int(means.iloc[:2], 1.0, 0.9) is None
    assert d_int(means.sample(frac=1.0, random_state=0), 1.0, 0.9) == 100  # order by d


def test_seeds_are_averaged_before_the_rule():
    result = intrinsic_dimension(
        linear,
        small_task(),
        [2, 8],
        "fastfood",
        seeds=[0, 1],
        config=TrainConfig(epochs=2),
        baseline="global",
        progress=False,
    )
    scores = result.frame.query("metric == 'test_accuracy'")
    assert set(scores["projection"]) == {"fastfood"}  # global baseline: no direct runs
    assert len(scores) == 4
    means = scores.groupby("d")["value"].mean()
    assert result.headline["mean_by_d"] == {2: means[2], 8: means[8]}
    assert result.headline["baseline"] == 1.0 and result.headline["baseline_kind"] == "global"


# ---- bad input ----


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_projection("dense", 0, 10), "d must be a positive int"),
        (lambda: make_projection("fastfood", -3, 10), "d must be a positive int"),
        (lambda: make_projection("dense", 11, 10), "exceeds the parameter count D=10"),
        (lambda: make_projection("gaussian", 2, 10), "valid: dense, sparse, fastfood, identity"),
        (lambda: make_projection("identity", 2, 10), "needs d == D"),
        (lambda: make_projection("fastfood", 2, 10) @ torch.zeros(3), r"takes a \(2,\) tensor"),
        (lambda: zoo_model("resnet"), "valid: digits-mlp, digits-cnn, digits-mlp-w<W>"),
        (lambda: zoo_model("digits-mlp-w3"), "valid: digits-mlp"),
        (lambda: TrainConfig(epochs=0), "epochs must be a positive int"),
        (lambda: TrainConfig(optimizer="sgd"), "valid: adam, lbfgs"),
        (lambda: SubspaceModel(nn.ReLU(), 2), "no trainable parameters"),
        (
            lambda: Task((torch.zeros(3, 2), torch.zeros(2)), (torch.zeros(1), torch.zeros(1))),
            "must match",
        ),
    ],
)
def test_bad_input_names_the_value_and_the_valid_choices(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_sweep_rejects_bad_settings():
    task = small_task(50)
    with pytest.raises(InputError, match=r"dims \[700\] exceed the model's parameter count D=650"):
        intrinsic_dimension(linear, task, [10, 700], progress=False)
    with pytest.raises(InputError, match="valid: direct, global"):
        intrinsic_dimension(linear, task, [10], baseline="best", progress=False)
    with pytest.raises(InputError, match="dims is empty"):
        intrinsic_dimension(linear, task, [], progress=False)


# ---- CLI ----


def test_cli_json_and_saved_result(tmp_path, capsys):
    out = tmp_path / "runs" / "intrinsic-dim" / "mlp"
    rc = main(
        ["intrinsic-dim", "--model", "digits-mlp-w16", "--dims", "5,600", "--epochs", "3",
         "--out", str(out), "--json", "--no-progress"]
    )  # fmt: skip
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["analysis"] == "intrinsic-dim" and payload["D"] == 16 * 16 + 76 * 16 + 10
    assert payload["baseline_kind"] == "direct" and payload["projection"] == "fastfood"
    assert set(payload["mean_by_d"]) == {"5", "600"}
    assert payload["settings"]["epochs"] == 3
    saved = Result.load(out)
    assert saved.headline["d_int90"] == payload["d_int90"]
    assert {"d", "seed", "projection", "metric", "value"} <= set(saved.frame.columns)


@pytest.mark.parametrize("verb", ["landscape-dim", "intrinsic-dim"])  # the old name is an alias
def test_cli_bad_model_lists_valid_names(capsys, verb):
    rc = main([verb, "--model", "gpt9", "--dims", "10", "--no-progress"])
    assert rc == 2
    assert "valid: digits-mlp, digits-cnn" in capsys.readouterr().err
    rc = main([verb, "--model", "digits-mlp", "--dims", "10,x", "--no-progress"])
    assert rc == 2
    assert "'x'" in capsys.readouterr().err


# ---- the zoo finding (slow: real training on digits) ----


@pytest.mark.slow
def test_digits_mlp_intrinsic_dimension_is_far_below_D(tmp_path):
    """digits-mlp (D = 26,122) reaches 90% of its direct accuracy in a 300-dim subspace; a
    10-dim one does not."""
    factory, task = zoo_model("digits-mlp")
    result = intrinsic_dimension(
        factory, task, [10, 300], "fastfood", config=TrainConfig(epochs=20), progress=False
    )
    head = result.headline
    assert head["D"] == 26_122 and head["baseline"] > 0.9
    assert head["d_int90"] is not None and head["d_int90"] < head["D"] / 20
    assert head["mean_by_d"][10] < head["threshold90"]


@pytest.mark.slow
def test_d_int90_varies_little_across_widths():
    """Li et al.'s width invariance: MLPs 64-W-W-10 with W = 32 and 256 differ 24x in D; both
    pass the 90% line at the same d of this grid."""
    found = {}
    for width in (32, 256):
        factory, task = zoo_model(f"digits-mlp-w{width}")
        head = intrinsic_dimension(
            factory, task, [25, 400], "fastfood", config=TrainConfig(epochs=20), progress=False
        ).headline
        found[width] = (head["D"], head["d_int90"])
    assert found[256][0] / found[32][0] > 20
    assert found[32][1] == found[256][1] == 400, found


@pytest.mark.slow
def test_width_invariance_of_d_int90_through_the_cli(tmp_path, capsys):
    """Li et al. 2018 (section 3): d_int90 of fully connected nets barely moves while D grows
    with width. Through `workbench landscape-dim` with its default training settings and 3 seeds
    on the zoo's digits MLP at hidden widths 32 and 128: D grows 7.5x; d_int90 was 150-200 at
    every width in benchmarks/bench_width_invariance.py (3 widths x 3 seeds, RESULTS.md). The
    check: both widths reach 90% on the grid, and d_int90 moves far less than D (< 2x)."""
    heads = {}
    for width in (32, 128):
        argv = ["landscape-dim", "--model", f"digits-mlp-w{width}", "--dims", "50,100,200,400"]
        out = str(tmp_path / str(width))
        assert main([*argv, "--seeds", "3", "--out", out, "--json", "--device", "cpu"]) == 0
        heads[width] = json.loads(capsys.readouterr().out)
    assert heads[128]["D"] / heads[32]["D"] > 7
    found = [heads[w]["d_int90"] for w in (32, 128)]
    assert all(d is not None for d in found), heads
    assert max(found) / min(found) < 2.0, found
