"""Sweep the subspace dimension d and measure the intrinsic dimension d_int90
(Li, Farkhoor, Liu & Yosinski, ICLR 2018; METHODS.md section 1.4).

For each d in `dims` and each seed s: a fresh module is initialised under `torch.manual_seed(s)`
(theta_0), wrapped as theta_0 + P theta_d with P drawn from seed s, and theta_d (starting at 0)
is trained with Adam for `epochs` passes over the training data (batches shuffled by seed s);
the score on the evaluation data at the end of training is recorded. The direct-training
baseline trains every parameter of the same fresh module (same seeds, same epochs, its own
learning rate).

d_int rule (the authors' `compt_dim_int` in main_plots.ipynb): average the score over seeds for
each d; d_int90 is the **first** d (ascending) whose mean is **strictly greater** than
0.90 x baseline. `baseline` is the mean direct-training score ("direct", the default), or 1.0
("global", the paper's headline convention for MNIST FC d_int90 = 750). d_int100 is the first d
whose mean reaches the baseline (>=: strictly greater would demand beating direct training).
None when no d in the sweep gets there.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from analyses.landscape.projections import PROJECTIONS
from analyses.landscape.subspace import SubspaceModel
from analyses.landscape.tasks import Task
from workbench import console
from workbench.analysis.results import Result
from workbench.errors import InputError

log = logging.getLogger(__name__)

ANALYSIS_NAME = "intrinsic-dim"
BASELINES = ("direct", "global")
OPTIMIZERS = ("adam", "lbfgs")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings shared by every run of a sweep.

    Attributes:
        epochs: passes over the training data per run.
        batch_size: examples per step (and per evaluation batch).
        lr: Adam learning rate for theta_d (subspace runs).
        direct_lr: Adam learning rate for all parameters (the direct baseline).
        optimizer: 'adam' (default), or 'lbfgs' (strong-Wolfe line search, 20 iterations per
            batch: for small smooth full-batch problems such as the paper's toy).
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.02
    direct_lr: float = 0.003
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"{name} must be a positive int, got {value!r}")
        for name in ("lr", "direct_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a positive number, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(
                f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}"
            )


def fit(
    model: nn.Module,
    parameters: Sequence[torch.Tensor],
    task: Task,
    config: TrainConfig,
    lr: float,
    seed: int,
    device: torch.device,
) -> dict[str, float]:
    """Train `parameters` of `model` (Adam or L-BFGS, `config.optimizer`); returns the final
    train/test loss and score."""
    optimizer: torch.optim.Optimizer
    if config.optimizer == "lbfgs":
        optimizer = torch.optim.LBFGS(list(parameters), lr=lr, line_search_fn="strong_wolfe")
    else:
        optimizer = torch.optim.Adam(list(parameters), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(config.epochs):
        for x, y in task.batches("train", config.batch_size, device, generator):

            def closure(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
                optimizer.zero_grad(set_to_none=True)
                loss = task.loss(model(x), y)
                loss.backward()
                return loss

            optimizer.step(closure)
    model.eval()
    train = task.evaluate(model, "train", config.batch_size, device)
    test = task.evaluate(model, "test", config.batch_size, device)
    return {
        f"test_{task.metric}": test[task.metric],
        f"train_{task.metric}": train[task.metric],
        "train_loss": train["loss"],
        "test_loss": test["loss"],
    }


def _fresh(factory: Callable[[], nn.Module], seed: int, device: torch.device) -> nn.Module:
    """factory() initialised under `torch.manual_seed(seed)`, without touching the caller's
    global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = factory()
    if not isinstance(module, nn.Module):
        raise InputError(f"the model factory returned {type(module).__name__}, not an nn.Module")
    return module.to(device)


def train_subspace(
    factory: Callable[[], nn.Module],
    task: Task,
    d: int,
    projection: str = "fastfood",
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """One run: train theta_d of a fresh module in a random d-dim subspace (P from `seed`)."""
    device = torch.device(device)
    wrapped = SubspaceModel(_fresh(factory, seed, device), d, projection, seed)
    with torch.random.fork_rng(devices=[]):  # dropout etc. draw from a seeded stream
        torch.manual_seed(seed)
        return fit(wrapped, wrapped.trainable_parameters(), task, config, config.lr, seed, device)


def train_direct(
    factory: Callable[[], nn.Module],
    task: Task,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """The baseline: train every parameter of the same fresh module."""
    device = torch.device(device)
    module = _fresh(factory, seed, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fit(module, list(module.parameters()), task, config, config.direct_lr, seed, device)


def d_int(means: pd.Series, baseline: float, fraction: float = 0.9) -> int | None:
    """The first d (ascending index of `means`, mean score per d) whose mean is strictly
    greater than `fraction` x `baseline` (fraction < 1), or at least `baseline` (fraction =
    1: d_int100); None if none is."""
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"fraction must be in (0, 1], got {fraction}")
    means = means.sort_index()
    hits = means >= baseline if fraction == 1.0 else means > fraction * baseline
    return int(means.index[hits.to_numpy()][0]) if hits.any() else None


def _check_sweep(dims: Sequence[int], seeds: Sequence[int], projection: str, baseline: str) -> None:
    if not dims:
        raise InputError("dims is empty; give at least one subspace dimension d")
    if len(set(dims)) != len(dims):
        raise InputError(f"dims has repeated values: {list(dims)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"seeds must be non-empty and distinct, got {list(seeds)}")
    if projection not in PROJECTIONS:
        raise InputError(f"unknown projection {projection!r}; valid: {', '.join(PROJECTIONS)}")
    if baseline not in BASELINES:
        raise InputError(f"unknown baseline {baseline!r}; valid: {', '.join(BASELINES)}")


def intrinsic_dimension(
    model: Callable[[], nn.Module] | nn.Module,
    task: Task,
    dims: Sequence[int],
    projection: str = "fastfood",
    seeds: Sequence[int] = (0,),
    config: TrainConfig = TrainConfig(),
    baseline: str = "direct",
    device: str | torch.device = "auto",
    model_name: str = "model",
    out: str | Path | None = None,
    progress: bool = True,
    num_threads: int | None = 1,
) -> Result:
    """Performance vs d and d_int90 / d_int100 of `model` on `task` (see the module docstring).

    Args:
        model: a factory returning a fresh module (called once per run, under the run's seed),
            or a module (then theta_0 is its current parameters for every seed; P and the batch
            order still vary by seed).
        task: data, loss, score (`workbench`'s zoo: `tasks.zoo_model(name)`).
        dims: subspace dimensions d, each in 1..D.
        projection: 'fastfood' (default), 'dense', 'sparse', or 'identity' (d = D only).
        seeds: one run per seed per d.
        baseline: 'direct' (mean direct-training score) or 'global' (1.0).
        out: save the result (parquet + JSON) there.
        progress: a progress bar on stderr (`workbench.console`: on a terminal only), and a
            log line per run.
        num_threads: torch CPU threads while training (restored after; None keeps the
            current setting). 1 by default, as for the zoo's digits models: their steps are
            tiny matmuls, and with 2 threads on a busy 2-core machine a digits-cnn step was
            measured 18x slower (313 ms vs 17 ms).

    Returns:
        Result `intrinsic-dim`: frame rows (d, seed, projection, metric, value), with
        projection 'direct' and d = D for baseline runs; headline d_int90, d_int100, baseline,
        baseline_kind, threshold90, D, the mean score per d.
    """
    from workbench.devices import resolve_device

    dims = [int(d) for d in dims]
    seeds = [int(s) for s in seeds]
    _check_sweep(dims, seeds, projection, baseline)
    factory = _as_factory(model)
    resolved = resolve_device(device)
    probe = _fresh(factory, seeds[0], torch.device("cpu"))
    D = sum(p.numel() for p in probe.parameters() if p.requires_grad)
    too_big = [d for d in dims if d > D]
    if too_big:
        raise InputError(f"dims {too_big} exceed the model's parameter count D={D}; use d <= {D}")
    metric = f"test_{task.metric}"
    runs = [("direct", D, s) for s in seeds if baseline == "direct"]
    runs += [(projection, d, s) for d in sorted(dims) for s in seeds]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        if num_threads is not None and resolved.type == "cpu":
            torch.set_num_threads(num_threads)
        with console.progress(
            len(runs), f"intrinsic-dim {model_name}", unit="run", enabled=progress
        ) as bar:
            for kind, d, seed in runs:
                bar.note(f"{kind} d={d} seed={seed}")
                t0 = time.perf_counter()
                if kind == "direct":
                    scores = train_direct(factory, task, seed, config, resolved)
                else:
                    scores = train_subspace(factory, task, d, kind, seed, config, resolved)
                scores["seconds"] = time.perf_counter() - t0
                log.info(
                    "%s %s d=%d seed=%d: %s=%.4f", model_name, kind, d, seed, metric, scores[metric]
                )
                rows += [
                    {"d": d, "seed": seed, "projection": kind, "metric": k, "value": float(v)}
                    for k, v in scores.items()
                ]
                bar.update()
    finally:
        torch.set_num_threads(threads)
    frame = pd.DataFrame(rows)
    result = _result(frame, metric, baseline, D, dims, seeds, projection, config, model_name)
    result.provenance.update(
        {
            "model": model_name,
            "task": task.name,
            "device": str(resolved),
            "torch": torch.__version__,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    if out is not None:
        result.save(out)
    return result


def _as_factory(model: Callable[[], nn.Module] | nn.Module) -> Callable[[], nn.Module]:
    if isinstance(model, nn.Module):
        import copy

        state = {k: v.detach().clone() for k, v in model.state_dict().items()}

        def factory() -> nn.Module:  # direct training must not modify the caller's module
            module = copy.deepcopy(model)
            module.load_state_dict(state)
            return module

        return factory
    if not callable(model):
        raise InputError(f"model must be an nn.Module or a factory, got {type(model).__name__}")
    return model


def _result(
    frame: pd.DataFrame,
    metric: str,
    baseline: str,
    D: int,
    dims: list[int],
    seeds: list[int],
    projection: str,
    config: TrainConfig,
    model_name: str,
) -> Result:
    scores = frame[frame["metric"] == metric]
    sub = scores[scores["projection"] != "direct"]
    means = sub.groupby("d")["value"].mean().sort_index()
    direct = scores[scores["projection"] == "direct"]["value"]
    base = float(direct.mean()) if baseline == "direct" else 1.0
    headline = {
        "d_int90": d_int(means, base, 0.9),
        "d_int100": d_int(means, base, 1.0),
        "baseline": base,
        "baseline_kind": baseline,
        "threshold90": 0.9 * base,
        "metric": metric,
        "D": D,
        "model": model_name,
        "projection": projection,
        "mean_by_d": {int(d): float(v) for d, v in means.items()},
    }
    if len(direct):
        headline["direct_mean"] = float(direct.mean())
    params = {"dims": sorted(dims), "seeds": seeds, "projection": projection, "baseline": baseline}
    params.update(asdict(config))
    return Result(analysis=ANALYSIS_NAME, frame=frame, headline=headline, params=params)
