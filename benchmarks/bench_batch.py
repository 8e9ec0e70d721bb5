"""Batch runner overhead: where the time of a batch over checkpoints x analyses goes (forward
passes and analysis compute vs orchestration), and what the Ray executor costs over local.

Run from the repository root::

    python benchmarks/bench_batch.py            # 10 toy-lm checkpoints x 2 analyses (a few min)
    python benchmarks/bench_batch.py --quick    # smoke: 3 checkpoints, 64 short texts (< 1 min)
    python benchmarks/bench_batch.py --no-write # print only, leave RESULTS.md alone

Spec (written as YAML into a temporary folder, deleted afterwards): the zoo's `toy-lm` series
(GPT-NeoX, 4 layers, d_model 128) at 10 of its 13 steps, dataset `text` (256 examples, max_length
64, positions all), sites `blocks.*.hook_resid_post` (4), analyses `twonn` and `anisotropy` with
their defaults, `device: cpu`: 10 captures and 10 x 4 x 2 = 80 cells.

Runs, each on the same spec and a fresh output folder unless said otherwise:
- local, workers=1 (tasks run in this process): wall time of `run_batch`, the sum of the capture
  tasks' and the cell tasks' own times (`task_seconds`), orchestration = wall - task seconds and
  its fraction of the wall; `make_plan` is timed separately (the CLI runs it before
  `run_batch`). The orchestration is split further by wrapping the executor the run makes
  (`workbench.batch.run.make_executor` is swapped for a timing wrapper; nothing else changes):
  executor start/close, each stage's wall minus its tasks' sum (dispatch, logging, skip checks),
  and the rest (plan.json, pending scan, results.parquet gathering, status.json);
- the same with this process limited to 1 thread (torch and BLAS, threadpoolctl): on 2 shared
  cores, 2 intra-op threads can lose badly to 1 when another job holds a core;
- the capture tasks' time split by re-measuring the same 10 captures outside the batch, per
  checkpoint: checkpoint load, dataset load, forward passes with the capture hooks into memory
  (`workbench.hooks.capture.capture` batch by batch, exactly as `capture_to_store` calls it), and
  `capture_to_store` into a scratch folder (forward + chunk buffering + store write); store write
  = capture_to_store - forward;
- ray, workers=2 (a local Ray the run starts and stops, 1 CPU per task): wall, `ray.init` and
  `ray.shutdown` (the wrapped executor's construction and close), stage walls, and the ratio of
  its wall to the local run's;
- local, workers=2 (a spawn process pool): the same parallelism without Ray (not with --quick);
- no-op resumes of the finished local and Ray outputs (every cell done: pure orchestration),
  `make_plan` + `run_batch` as `workbench batch run` does them.
A probe Ray session at the end (same init arguments as the executor) times an empty task's round
trip and reads the torch and OpenMP threads a Ray worker gets.

Threads: the machine has 2 cores. This process sets torch to `--threads` intra-op threads
(default: the cores, 2, torch's own default here) and leaves numpy's BLAS at its default (2).
A local worker of a 2-process pool gets 1 torch thread (`_limit_threads`) but keeps the default
BLAS threads; a Ray task asking 1 CPU gets OMP_NUM_THREADS=1 from Ray, so torch (and OpenBLAS)
run 1 thread per worker. OMP_NUM_THREADS is deliberately
not set here: Ray workers inherit the driver's environment and would not get Ray's default.
Single runs, not medians: each run is a whole batch. Check the load average first (printed):
other jobs on the 2 cores inflate every number.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import machine, write_results  # noqa: E402

STEPS_FULL = [0, 1, 4, 16, 32, 64, 128, 256, 512, 1000]
STEPS_QUICK = [0, 64, 1000]
ANALYSES = ("twonn", "anisotropy")

SPEC = """\
name: bench-batch
out: {out}
models:
  - model: toy-lm
    steps: {steps}
datasets:
  - dataset: text
    n_examples: {n_examples}
    max_length: {max_length}
sites: ["blocks.*.hook_resid_post"]
analyses:
{analyses}
device: cpu
"""


class Probe:
    """Timings of the executor one `run_batch` makes: construction, close, each `map` (stage)."""

    def __init__(self) -> None:
        self.start = self.close = 0.0
        self.stages: list[tuple[str, int, float]] = []  # (task function, jobs, wall)
        self.task_seconds: dict[str, float] = {}  # task function or analysis -> sum of its tasks


@contextlib.contextmanager
def probed():
    """Swap `workbench.batch.run.make_executor` for a wrapper that times the executor."""
    import workbench.batch.run as run_module

    real = run_module.make_executor
    probe = Probe()

    def make(name: str, workers: int = 1, address: str | None = None):
        t = time.perf_counter()
        runner = real(name, workers, address)
        probe.start = time.perf_counter() - t
        real_map, real_close = runner.map, runner.close

        def map_(fn, jobs, resources):
            t = time.perf_counter()
            for i, outcome in real_map(fn, jobs, resources):
                key = jobs[i]["cell"].analysis if "cell" in jobs[i] else fn.__name__
                probe.task_seconds[key] = probe.task_seconds.get(key, 0.0) + outcome["seconds"]
                yield i, outcome
            probe.stages.append((fn.__name__, len(jobs), time.perf_counter() - t))

        def close() -> None:
            t = time.perf_counter()
            real_close()
            probe.close = time.perf_counter() - t

        runner.map, runner.close = map_, close
        return runner

    run_module.make_executor = make
    try:
        yield probe
    finally:
        run_module.make_executor = real


def run_once(spec_path: Path, out: Path, executor: str, workers: int, plan=None) -> dict[str, Any]:
    """make_plan (unless given) + run_batch on `out`, with the executor probed."""
    from workbench.batch import load_spec, make_plan, run_batch

    t = time.perf_counter()
    if plan is None:
        plan = make_plan(load_spec(spec_path, out=str(out)), estimate=False)
    plan_s = time.perf_counter() - t
    lines: list[str] = []
    with probed() as probe:
        status = run_batch(plan, executor=executor, workers=workers, log=lines.append)
    stage: dict[str, tuple[int, float]] = {}  # cell_task runs twice: acts, then trajectory
    for name, n, wall in probe.stages:
        before = stage.get(name, (0, 0.0))
        stage[name] = (before[0] + n, before[1] + wall)
    failed = [line for line in lines if "FAILED" in line]
    if status["failed"] or status["pending"] or failed:
        raise RuntimeError(f"batch did not finish cleanly: {status}; {failed[:3]}")
    return {
        "plan": plan,
        "plan_s": plan_s,
        "wall": status["wall_seconds"],
        "task": status["task_seconds"],
        "cells": status["cells"],
        "start": probe.start,
        "close": probe.close,
        "capture_stage": stage.get("capture_task", (0, 0.0)),
        "cell_stage": stage.get("cell_task", (0, 0.0)),
        "capture_task_s": probe.task_seconds.get("capture_task", 0.0),
        "per_analysis": {a: probe.task_seconds.get(a, 0.0) for a in ANALYSES},
    }


def capture_components(plan, scratch: Path) -> dict[str, float]:
    """The plan's captures re-done outside the batch, split into their parts (sums, seconds)."""
    from workbench.batch.checkpoints import load_checkpoint
    from workbench.data import load_dataset
    from workbench.devices import resolve_dtype
    from workbench.hooks.capture import capture
    from workbench.sites.positions import parse_positions
    from workbench.store.capture import _model_inputs, capture_to_store

    parts = {"load": 0.0, "dataset": 0.0, "forward": 0.0, "capture_to_store": 0.0}
    spec = plan.spec
    for n, cap in enumerate(plan.captures):
        t0 = time.perf_counter()
        handle = load_checkpoint(cap.checkpoint, spec.zoo_root, spec.device, spec.dtype)
        t1 = time.perf_counter()
        data = cap.dataset
        examples = load_dataset(data.dataset, data.n_examples)
        t2 = time.perf_counter()
        positions = parse_positions(str(data.positions))
        cast = resolve_dtype(data.store_dtype)
        for lo in range(0, len(examples), data.batch_size):
            capture(
                handle,
                list(cap.sites),
                _model_inputs(handle, examples[lo : lo + data.batch_size]),
                positions=positions,
                dtype=cast,
                max_length=data.max_length,
            )
        t3 = time.perf_counter()
        capture_to_store(
            handle,
            list(cap.sites),
            examples,
            scratch / f"store{n}",
            dataset=data.dataset,
            positions=positions,
            store_dtype=data.store_dtype,
            batch_size=data.batch_size,
            max_length=data.max_length,
            progress=False,
        )
        t4 = time.perf_counter()
        shutil.rmtree(scratch / f"store{n}")
        parts["load"] += t1 - t0
        parts["dataset"] += t2 - t1
        parts["forward"] += t3 - t2
        parts["capture_to_store"] += t4 - t3
    parts["store_write"] = parts["capture_to_store"] - parts["forward"]
    return parts


@contextlib.contextmanager
def one_thread():
    """torch and the BLAS/OpenMP pools of this process limited to one thread."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def ray_probe(cpus: int, round_trips: int) -> dict[str, Any]:
    """A Ray session like the executor's: init, empty-task round trips, worker threads, shutdown."""
    import ray

    t = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t

    @ray.remote(num_cpus=1, max_retries=0)
    def imports() -> float:
        """What a fresh worker imports before its first capture and cell can run."""
        t = time.perf_counter()
        import workbench.models  # noqa: F401  (torch, transformers, transformer_lens)
        import workbench.store.capture  # noqa: F401
        from workbench.analysis.registry import analyses

        analyses()  # imports every analysis module, as the first get_analysis does
        return time.perf_counter() - t

    @ray.remote(num_cpus=1, max_retries=0)
    def threads() -> tuple[int, str]:
        import torch

        return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS", "unset")

    @ray.remote(num_cpus=1, max_retries=0)
    def empty() -> None:
        return None

    import_s = ray.get([imports.remote() for _ in range(cpus)])
    worker_threads = ray.get([threads.remote() for _ in range(cpus)])
    ray.get(empty.remote())
    t = time.perf_counter()
    for _ in range(round_trips):
        ray.get(empty.remote())
    trip_s = (time.perf_counter() - t) / round_trips
    t = time.perf_counter()
    ray.shutdown()
    return {
        "init": init_s,
        "shutdown": time.perf_counter() - t,
        "trip": trip_s,
        "threads": sorted(set(worker_threads)),
        "imports": max(import_s),
    }


def fmt(seconds: float) -> str:
    return f"{seconds:.2f} s"


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def run(quick: bool, local2: bool, threads: int) -> tuple[list[str], dict[str, Any]]:
    import torch

    from workbench import zoo

    torch.set_num_threads(threads)
    steps = STEPS_QUICK if quick else STEPS_FULL
    n_examples, max_length = (64, 32) if quick else (256, 64)
    series = zoo.load_series("toy-lm")
    missing = [s for s in steps if s not in series.steps]
    if missing:
        raise SystemExit(f"toy-lm has no steps {missing}; it has {series.steps}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        spec_path = tmp / "spec.yaml"
        spec_path.write_text(
            SPEC.format(
                out=tmp / "unused",
                steps=list(steps),
                n_examples=n_examples,
                max_length=max_length,
                analyses="\n".join(f"  - analysis: {a}" for a in ANALYSES),
            )
        )
        load_before = os.getloadavg()
        t_all = time.perf_counter()
        # components first: also warms imports and the page cache of the checkpoints for all runs
        from workbench.batch import load_spec, make_plan

        plan0 = make_plan(load_spec(spec_path, out=str(tmp / "components")), estimate=False)
        components = capture_components(plan0, tmp / "scratch")
        local = run_once(spec_path, tmp / "local", "local", 1)
        with one_thread():
            local1 = run_once(spec_path, tmp / "local1", "local", 1)
        ray_run = run_once(spec_path, tmp / "ray", "ray", 2)
        local2_run = run_once(spec_path, tmp / "local2", "local", 2) if local2 else None
        resume_local = run_once(spec_path, tmp / "local", "local", 1)
        resume_ray = run_once(spec_path, tmp / "ray", "ray", 2)
        probe = ray_probe(2, 20)
        total = time.perf_counter() - t_all
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n_caps, n_cells = len(plan0.captures), len(plan0.cells)
    w = local["wall"]
    cap_s, cell_s = local["capture_task_s"], local["task"] - local["capture_task_s"]
    orch = w - local["task"]
    stage_gap = (local["capture_stage"][1] - cap_s) + (local["cell_stage"][1] - cell_s)
    rest = orch - stage_gap - local["start"] - local["close"]
    c = components
    c_sum = c["load"] + c["dataset"] + c["capture_to_store"]
    lines = [
        f"Spec: toy-lm (GPT-NeoX, 4 layers, d_model 128) at {len(steps)} steps {list(steps)}, "
        f"`text` {n_examples} examples (max_length {max_length}, positions all), "
        f"`blocks.*.hook_resid_post` (4 sites), analyses {', '.join(ANALYSES)} (defaults), "
        f"device cpu: {n_caps} captures, {n_cells} cells.",
        "",
        "| Local run, workers=1 (in process) | Seconds | Share of wall |",
        "|---|---|---|",
        f"| `make_plan` (before `run_batch`, not in its wall) | {fmt(local['plan_s'])} | - |",
        f"| **`run_batch` wall** | **{fmt(w)}** | 100 % |",
        f"| capture tasks ({n_caps}: load checkpoint, load dataset, capture_to_store) "
        f"| {fmt(cap_s)} | {pct(cap_s, w)} |",
        f"| cell tasks ({n_cells}: read store, analyse, write result) | {fmt(cell_s)} "
        f"| {pct(cell_s, w)} |",
        *[
            f"| - of which {name} ({n_cells // len(ANALYSES)} cells) | {fmt(s)} | {pct(s, w)} |"
            for name, s in local["per_analysis"].items()
        ],
        f"| **orchestration = wall - task seconds** | **{fmt(orch)}** | **{pct(orch, w)}** |",
        f"| - executor start + close | {fmt(local['start'] + local['close'])} "
        f"| {pct(local['start'] + local['close'], w)} |",
        f"| - between tasks (stage walls - task sums: dispatch, logging) | {fmt(stage_gap)} "
        f"| {pct(stage_gap, w)} |",
        f"| - the rest (plan.json, pending scan, store checks, results.parquet, status) "
        f"| {fmt(rest)} | {pct(rest, w)} |",
        "",
        f"| The {n_caps} captures re-done outside the batch | Seconds | Share |",
        "|---|---|---|",
        f"| checkpoint load (`load_checkpoint`) | {fmt(c['load'])} | {pct(c['load'], c_sum)} |",
        f"| dataset load (`load_dataset`) | {fmt(c['dataset'])} | {pct(c['dataset'], c_sum)} |",
        f"| forward passes with capture hooks, into memory | {fmt(c['forward'])} "
        f"| {pct(c['forward'], c_sum)} |",
        f"| word labels, chunk buffering, store write (`capture_to_store` - forward) "
        f"| {fmt(c['store_write'])} "
        f"| {pct(c['store_write'], c_sum)} |",
        f"| total (in the batch: {fmt(cap_s)}) | {fmt(c_sum)} | 100 % |",
        "",
        "| Run | Plan | `run_batch` wall | Executor start / close | Capture stage | "
        "Cell stage | Task seconds (sum) | Wall - task s | Wall / local fresh |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    runs = [
        (f"local, workers=1, fresh ({threads} threads)", local),
        ("local, workers=1, fresh, 1 thread (torch + BLAS)", local1),
        ("ray, workers=2, fresh", ray_run),
    ]
    if local2_run:
        runs.append(("local, workers=2 (process pool), fresh", local2_run))
    runs += [
        ("local, workers=1, no-op resume", resume_local),
        ("ray, workers=2, no-op resume", resume_ray),
    ]
    for label, r in runs:
        lines.append(
            f"| {label} | {fmt(r['plan_s'])} | {fmt(r['wall'])} | "
            f"{fmt(r['start'])} / {fmt(r['close'])} | {fmt(r['capture_stage'][1])} | "
            f"{fmt(r['cell_stage'][1])} | {fmt(r['task'])} | {fmt(r['wall'] - r['task'])} | "
            f"{r['wall'] / w:.2f} |"
        )
    ray_wall_no_init = ray_run["wall"] - ray_run["start"] - ray_run["close"]
    lines += [
        "",
        f"- **Orchestration overhead (local, workers=1): {fmt(orch)} of {fmt(w)} = "
        f"{pct(orch, w)}** of `run_batch`; with `make_plan` counted as orchestration too: "
        f"{pct(orch + local['plan_s'], w + local['plan_s'])}. Forward passes with hooks "
        f"(re-measured) are {pct(c['forward'], w)} of the wall, store writing "
        f"{pct(c['store_write'], w)}, checkpoint+dataset loading "
        f"{pct(c['load'] + c['dataset'], w)}, analyses {pct(cell_s, w)}.",
        f"- **Ray / local wall: {ray_run['wall'] / w:.2f}** ({fmt(ray_run['wall'])} vs "
        f"{fmt(w)}); Ray's init {fmt(ray_run['start'])} + shutdown {fmt(ray_run['close'])}; "
        f"without them {fmt(ray_wall_no_init)} ({ray_wall_no_init / w:.2f}x local). Ray's task "
        f"seconds ({fmt(ray_run['task'])}) sum two workers running at once (1 torch thread each), "
        "so its wall - task seconds can be negative; a worker's first task also pays its imports.",
        f"- Ray probe session: init {fmt(probe['init'])}, shutdown {fmt(probe['shutdown'])}, "
        f"empty-task round trip {1000 * probe['trip']:.1f} ms (mean of 20), a fresh worker's "
        f"imports before its first task (workbench.models, .pipeline, every analysis) "
        f"{fmt(probe['imports'])} (2 workers at once, the slower), "
        f"worker (torch threads, OMP_NUM_THREADS): {probe['threads']}.",
        f"- No-op resume (all {n_cells} cells done): local {fmt(resume_local['plan_s'])} plan + "
        f"{fmt(resume_local['wall'])} run; Ray {fmt(resume_ray['plan_s'])} + "
        f"{fmt(resume_ray['wall'])} (no executor is started when nothing is pending).",
        f"- Whole benchmark {total:.0f} s; 1-min load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after.",
    ]
    return lines, {"load_before": load_before, "load_after": load_after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 1 min)")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument(
        "--no-local2",
        action="store_true",
        help="skip the local workers=2 (process pool) run (always skipped with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch intra-op threads of this process (local workers=1 runs); default: cores",
    )
    args = parser.parse_args()
    print(f"1-min load average before: {os.getloadavg()[0]:.2f}", flush=True)
    lines, _ = run(args.quick, local2=not (args.no_local2 or args.quick), threads=args.threads)
    mode = "quick" if args.quick else "full"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    flags = " --quick" if args.quick else ""
    body = "\n".join(
        [
            f"## bench_batch ({mode})",
            "",
            f"`python benchmarks/bench_batch.py{flags}` on {stamp}; {machine()}; "
            "single runs (each row is one whole batch).",
            "",
            *lines,
        ]
    )
    print(body)
    if not args.no_write:
        write_results(mode, body, bench="bench_batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
