"""Executors run batch tasks: `local` (this machine: in-process for one worker, a process pool for
more) and `ray` (Ray tasks with per-task CPUs, GPUs and memory). Both take module-level task
functions and yield `(index, outcome)` as tasks finish; a task's own errors are part of its
outcome, so an executor error means the task could not run at all.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

from workbench.batch.spec import Resources
from workbench.errors import InputError

EXECUTORS = ("local", "ray")


class LocalExecutor:
    """`workers` processes on this machine; with one worker tasks run in this process. The pool
    is started on first use and kept for every stage of the run until `close()`."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise InputError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool: Any = None

    def map(
        self, fn: Callable[[Any], Any], jobs: list[Any], resources: list[Resources]
    ) -> Iterator[tuple[int, Any]]:
        if self.workers == 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                yield i, fn(job)
            return
        from concurrent.futures import as_completed

        pool = self._start()
        with _bare_main():  # workers are spawned on submit
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def _start(self) -> Any:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_threads,
                initargs=(threads,),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """Spawned workers re-run the parent's `__main__` file before their first task; when that
    is not a guarded script (a Streamlit page, a test runner's module, a notebook's kernel
    launcher) it would run again in every worker. Tasks are module-level functions of installed
    packages, so the workers get an empty `__main__` instead while they are started."""
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = saved


def _limit_threads(threads: int) -> None:
    """Split the cores between worker processes instead of oversubscribing them: torch's
    threads and the BLAS/OpenMP pools numpy and scikit-learn use."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


class RayExecutor:
    """Ray tasks, each asking for its cell's resources. `address` None starts a local Ray
    instance (or joins the one `RAY_ADDRESS` names); "auto" joins the cluster this machine is in;
    "ray://HOST:10001" joins a remote cluster through Ray Client."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise InputError(
                "the ray executor needs Ray: pip install 'ray>=2.9' (or use --executor local)"
            ) from None
        self.ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None and not os.environ.get("RAY_ADDRESS"):
                kwargs["num_cpus"] = num_cpus
            ray.init(address=address, **kwargs)
            self._started = True

    def map(
        self, fn: Callable[[Any], Any], jobs: list[Any], resources: list[Resources]
    ) -> Iterator[tuple[int, Any]]:
        remote = self.ray.remote(fn)
        refs = {}
        for i, (job, need) in enumerate(zip(jobs, resources, strict=True)):
            options: dict[str, Any] = {
                "num_cpus": need.cpus,
                "num_gpus": need.gpus,
                "max_retries": 0,
            }
            if need.memory_gb:
                options["memory"] = int(need.memory_gb * 2**30)
            refs[remote.options(**options).remote(job)] = i
        pending = list(refs)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            for ref in done:
                yield refs[ref], self.ray.get(ref)

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


def make_executor(name: str, workers: int = 1, address: str | None = None):
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address, num_cpus=None if workers == 1 else workers)
    raise InputError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")


def timed(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `fn` and add its wall time in seconds (the task's own time, for overhead accounting)."""
    start = time.perf_counter()
    outcome = fn()
    outcome["seconds"] = time.perf_counter() - start
    return outcome
