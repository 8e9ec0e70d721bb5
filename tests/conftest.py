"""Shared fixtures: the real MiniLM, a small GPT-NeoX built from a config, a plain MLP, the quick
zoo; and what lets the suite run in parallel workers (`pytest -n 2`, pytest-xdist): the cores split
between the workers, and `built_once` for what the whole run builds once."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from threadpoolctl import threadpool_limits
from torch import nn

from workbench import load_model
from workbench.zoo.hf_folder import build_gpt_neox


def threads_per_worker() -> int | None:
    """The cores each xdist worker may use (None outside xdist): 2 workers on 2 cores get one
    thread each instead of two each, which would oversubscribe the cores and slow every test."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // int(workers))


def pytest_configure(config) -> None:
    """In an xdist worker: torch's threads and the BLAS/OpenMP pools cut to the worker's share of
    the cores, here and (through the environment) in the servers, jobs and kernels tests start."""
    threads = threads_per_worker()
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
        torch.set_num_threads(threads)
        threadpool_limits(threads)


def shares_a_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture built once per module or class (a trained model, a
    running app server)."""
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(
        defs[-1].scope in ("package", "module", "class") for defs in info.name2fixturedefs.values()
    )


def skip_cuda_tests_without_cuda(items: list[pytest.Item]) -> None:
    """Tests marked `cuda` are skipped, with the reason shown, where torch sees no CUDA device
    (this machine, CI): CUDA is used when present, never required."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if marked and not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is False")
        for item in marked:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items: list[pytest.Item]) -> None:
    """Tests marked `cuda` skip without a CUDA device (`skip_cuda_tests_without_cuda`).

    Under xdist (`--dist loadgroup`): the tests of a module that share a module- or
    class-scoped fixture form one group, run by one worker, so the fixture is built once; every
    other test goes to whichever worker is free. The longest work comes first, so that no
    worker is left alone with it at the end: `slow` tests on their own (the zoo's full builds,
    the notebooks), then groups with a `slow` test, then the rest (`--no-loadscope-reorder`
    keeps this order)."""
    skip_cuda_tests_without_cuda(items)
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    group: dict[pytest.Item, str] = {}
    for item in items:
        if shares_a_fixture(item):
            group[item] = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group[item]))
    slow = {group.get(item, item) for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        return 2 if group.get(item, item) not in slow else 1 if item in group else 0

    items.sort(key=rank)


WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "bird",
    "sat",
    "ran",
    "flew",
    "on",
    "over",
    "under",
    "mat",
    "log",
    "tree",
    "big",
    "small",
    "red",
    "blue",
    "and",
    ".",
]


@pytest.fixture(scope="session")
def minilm():
    return load_model("minilm", device="cpu")


@pytest.fixture(scope="session")
def neox_dir(tmp_path_factory):
    return build_gpt_neox(tmp_path_factory.mktemp("neox"), WORDS, n_layers=4, d_model=64, n_heads=4)


@pytest.fixture(scope="session")
def neox(neox_dir):
    return load_model(neox_dir, device="cpu")


class MLP(nn.Module):
    """A plain module: two hidden layers, one shared ReLU module (called twice per pass)."""

    def __init__(self, d_in: int = 8, d_hidden: int = 16, d_out: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_hidden)
        self.act = nn.ReLU()
        self.head = nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc2(self.act(self.fc1(x)))))


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return load_model(MLP(), device="cpu", name="mlp")


def hook_count(module: nn.Module) -> int:
    """Forward hooks on `module` and all its submodules."""
    return sum(len(m._forward_hooks) for m in module.modules())


def run_tmp(tmp_path_factory) -> Path:
    """A tmp folder of the whole test run: under xdist the parent of every worker's own base
    folder (so shared by the workers of this run only), else the session's base folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def built_once(tmp_path_factory) -> Callable[[str, Callable[[Path], object]], Path]:
    """`built_once(name, build)`: the folder `name` of this test run, filled by `build(folder)`
    once for the whole run, even across xdist workers: the first worker to ask builds it under a
    file lock while the others wait, then all reuse it (read-only, by convention). A build that
    raised leaves no marker, so the next one to ask builds it again (and fails the same way)."""
    root = run_tmp(tmp_path_factory)

    def get(name: str, build: Callable[[Path], object]) -> Path:
        folder, done = root / name, root / f"{name}.built"
        with FileLock(str(root / f"{name}.lock")):
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                build(folder)
                done.touch()
        return folder

    return get


@pytest.fixture(scope="session", autouse=True)
def zoo_builds_one_at_a_time(tmp_path_factory):
    """Under xdist, `zoo.build` of one zoo folder runs in one worker at a time: workers that ask
    for the same model (of the default zoo, `~/.cache/workbench/zoo`, when `workbench demo` has
    not filled it yet) wait for the first, then find its build cached, instead of racing."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    from workbench import zoo

    build = zoo.build
    locks = run_tmp(tmp_path_factory) / "zoo-locks"
    locks.mkdir(exist_ok=True)

    def locked_build(name: str, root=None, **kwargs) -> Path:
        folder = str((zoo.zoo_root(root) / name).resolve())
        with FileLock(str(locks / f"{hashlib.sha1(folder.encode()).hexdigest()[:16]}.lock")):
            return build(name, root, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zoo, "build", locked_build)
        yield


@pytest.fixture(scope="session")
def quick_zoo(built_once) -> Path:
    """A zoo root with a quick (tiny, few-step) toy-lm build, shared by the whole test run."""
    from workbench import zoo

    return built_once("quick-zoo", lambda root: zoo.build("toy-lm", root=root, quick=True))


#: the zoo's toy-lm site the shared SAE (`toy_lm_sae`) reads
TOY_SAE_SITE = "blocks.1.hook_resid_post"


@pytest.fixture(scope="session")
def toy_lm_sae(built_once) -> Path:
    """A folder with `store` (the default zoo's toy-lm captured on 256 grammar-lm examples at
    `TOY_SAE_SITE`, with grammar-lm's topic, sentiment, pos labels) and `sae` (a TopK SAE
    trained there with `workbench sae train`'s defaults, its feature report in `sae/features`),
    all made through the CLI once for the whole test run. Minutes: the 2,000 default steps (and,
    without `workbench demo` before, the zoo's toy-lm build)."""
    from workbench.cli.main import main

    def build(folder: Path) -> None:
        store, sae = str(folder / "store"), str(folder / "sae")
        steps = [
            ["capture", "--model", "toy-lm", "--dataset", "grammar-lm", "--n-examples", "256",
             "--sites", TOY_SAE_SITE, "--out", store, "--device", "cpu"],
            ["sae", "train", "--store", store, "--site", TOY_SAE_SITE, "--out", sae,
             "--device", "cpu", "--no-progress"],
            ["sae", "features", "--sae", sae, "--store", store, "--out", f"{sae}/features",
             "--html", "none"],
        ]  # fmt: skip
        for argv in steps:
            assert main(argv) == 0, argv

    return built_once("toy-lm-sae", build)


@pytest.fixture(scope="session")
def small_toy_sae(quick_zoo) -> Callable[[Path, Path, str], None]:
    """`small_toy_sae(store, sae, site)`: the quick zoo's toy-lm captured on 24 grammar-lm
    examples at `site` into the store folder `store`, and a small TopK SAE (d_sae 64, k 4, 40
    steps) trained there into `sae` with its feature report in `sae/features`, all through the
    CLI. Seconds."""
    from workbench import zoo
    from workbench.cli.main import main

    def make(store_path: Path, sae_path: Path, site: str) -> None:
        store, sae = str(store_path), str(sae_path)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(zoo.ZOO_ENV, str(quick_zoo))
            for argv in (
                ["capture", "--model", "toy-lm", "--dataset", "grammar-lm", "--n-examples", "24",
                 "--sites", site, "--out", store, "--device", "cpu"],
                ["sae", "train", "--store", store, "--site", site, "--d-sae", "64", "--k", "4",
                 "--steps", "40", "--out", sae, "--device", "cpu"],
                ["sae", "features", "--sae", sae, "--store", store, "--out", f"{sae}/features",
                 "--html", "none"],
            ):  # fmt: skip
                assert main(argv) == 0, argv

    return make
