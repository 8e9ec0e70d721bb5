"""Running a plan: captures first (each store once), then analysis cells, then the cells that fit
trajectories over checkpoints; finished cells are skipped, a failed cell is recorded with its error
and the others go on. Results are gathered into `OUT/results.parquet` (one row per cell x metric,
with the cell's model, step, dataset, site, label and every setting as columns).
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from workbench.batch.executors import make_executor, timed
from workbench.batch.plan import Capture, Cell, Plan
from workbench.batch.storage import ResultStore, StoreLocation
from workbench.errors import InputError

RESULTS = "results.parquet"


def run_batch(
    plan: Plan,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run every unfinished cell of `plan`; returns the status counts and timings:
    `wall_seconds` of the whole run and `task_seconds`, the sum of the tasks' own times (with one
    worker, wall minus task seconds is the orchestration overhead; with more it is busy time).

    Args:
        executor: "local" or "ray".
        workers: local processes (1: in this process), or Ray's CPUs when it starts a local Ray.
        address: Ray cluster address (None: local Ray, or $RAY_ADDRESS).
        log: called with one line per finished task.
    """
    start = time.perf_counter()
    results = ResultStore(plan.out)
    write_plan(plan, results)
    pending = [c for c in plan.cells if not results.exists("cells", c.key, "result.json")]
    log(f"{len(plan.cells) - len(pending)} of {len(plan.cells)} cells already done")
    task_seconds = 0.0
    runner = make_executor(executor, workers, address) if pending else None
    try:
        if runner is not None:
            failed_captures, seconds = _run_captures(plan, pending, runner, log)
            task_seconds += seconds
            for stage in ("acts", "trajectory"):
                cells = [c for c in pending if c.stage == stage]
                task_seconds += _run_cells(plan, cells, failed_captures, runner, results, log)
    finally:
        if runner is not None:
            runner.close()
    frame = gather(plan, results)
    status = batch_status(plan.out)
    wall = time.perf_counter() - start
    status.update(wall_seconds=wall, task_seconds=task_seconds, rows=len(frame), executor=executor)
    results.write_json(("status.json",), status)
    return status


def _run_captures(
    plan: Plan, pending: list[Cell], runner: Any, log: Callable[[str], None]
) -> tuple[dict[str, str], float]:
    """Capture every store a pending cell reads; returns (failed capture key -> error, seconds)."""
    stores = StoreLocation(plan.stores)
    needed = {k for c in pending for k in (c.capture, c.capture_b) if k}
    todo = [c for c in plan.captures if c.key in needed and not stores.is_complete(c.key)]
    jobs = [_capture_job(plan, c) for c in todo]
    failed: dict[str, str] = {}
    seconds = 0.0
    for n, (i, outcome) in enumerate(runner.map(capture_task, jobs, [c.resources for c in todo])):
        capture = todo[i]
        seconds += outcome["seconds"]
        if outcome["error"]:
            failed[capture.key] = outcome["error"]
        verdict = "FAILED " + outcome["error"].splitlines()[0] if outcome["error"] else "captured"
        log(
            f"[capture {n + 1}/{len(todo)}] {capture.checkpoint.label} {capture.dataset.dataset}: "
            f"{verdict} ({outcome['seconds']:.1f} s)"
        )
    return failed, seconds


def _capture_job(plan: Plan, capture: Capture) -> dict[str, Any]:
    spec = plan.spec
    return {
        "capture": capture,
        "stores": plan.stores,
        "zoo_root": spec.zoo_root,
        "device": spec.device,
        "dtype": spec.dtype,
    }


def capture_task(job: dict[str, Any]) -> dict[str, Any]:
    """Capture one store (resuming a partial one); `error` is None or the error text."""

    def work() -> dict[str, Any]:
        from workbench.analysis.checkpoints import iter_checkpoints
        from workbench.batch.checkpoints import load_checkpoint

        capture: Capture = job["capture"]
        checkpoint = capture.checkpoint
        stores = StoreLocation(job["stores"])
        if stores.is_complete(capture.key):
            return {"error": None}
        try:
            if checkpoint.step is None:  # a single model, not a checkpoint of a series
                handle = load_checkpoint(checkpoint, job["zoo_root"], job["device"], job["dtype"])
                _capture(handle, capture, stores)
            else:  # the core loop over this one step: the checkpoint is freed after it
                for _, handle in iter_checkpoints(
                    checkpoint.model,
                    [checkpoint.step],
                    zoo_root=job["zoo_root"],
                    device=job["device"],
                    dtype=job["dtype"],
                ):
                    _capture(handle, capture, stores)
                    del handle
            stores.publish(capture.key)
        except Exception as exc:  # recorded on the cells that needed this store
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"error": None}

    return timed(work)


def _capture(handle: Any, capture: Capture, stores: StoreLocation) -> None:
    """Capture `capture`'s dataset at its sites from `handle` into its local store folder."""
    from workbench.data import load_dataset
    from workbench.sites.positions import parse_positions
    from workbench.store.capture import capture_to_store

    dataset = capture.dataset
    capture_to_store(
        handle,
        list(capture.sites),
        load_dataset(dataset.dataset, dataset.n_examples),
        stores.local_path(capture.key),
        dataset=dataset.dataset,
        positions=parse_positions(str(dataset.positions)),
        store_dtype=dataset.store_dtype,
        batch_size=dataset.batch_size,
        max_length=dataset.max_length,
        progress=False,
    )


def _run_cells(
    plan: Plan,
    cells: list[Cell],
    failed_captures: dict[str, str],
    runner: Any,
    results: ResultStore,
    log: Callable[[str], None],
) -> float:
    runnable = []
    for cell in cells:
        broken = next((k for k in (cell.capture, cell.capture_b) if k in failed_captures), None)
        if broken:
            record_failure(results, cell, f"capture {broken} failed: {failed_captures[broken]}")
            log(f"[cell] {_describe(cell)}: FAILED (its capture failed)")
        else:
            runnable.append(cell)
    jobs = [{"cell": c, "out": plan.out, "stores": plan.stores} for c in runnable]
    seconds = 0.0
    for n, (i, outcome) in enumerate(runner.map(cell_task, jobs, [c.resources for c in runnable])):
        seconds += outcome["seconds"]
        verdict = "FAILED " + outcome["error"].splitlines()[0] if outcome["error"] else "done"
        if outcome.get("warnings"):
            verdict += f" with {len(outcome['warnings'])} warning(s) in result.json"
        log(
            f"[cell {n + 1}/{len(runnable)}] {_describe(runnable[i])}: {verdict} ({outcome['seconds']:.2f} s)"
        )
    return seconds


def _describe(cell: Cell) -> str:
    where = cell.model if cell.step is None else f"{cell.model}@{cell.step}"
    pair = (
        f" vs {'' if cell.step_b is None else f'@{cell.step_b} '}{cell.site_b}"
        if cell.site_b
        else ""
    )
    return f"{cell.analysis} {where} {cell.dataset} {cell.site}{pair}"


def cell_task(job: dict[str, Any]) -> dict[str, Any]:
    """Run one cell and write its result (or its error) under OUT/cells/KEY/."""

    def work() -> dict[str, Any]:
        cell: Cell = job["cell"]
        results = ResultStore(job["out"])
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if cell.stage == "trajectory":
                    result = _run_trajectory(cell, results)
                else:
                    result = _run_acts(cell, StoreLocation(job["stores"]))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            record_failure(results, cell, error, traceback.format_exc())
            return {"error": error}
        frame = result.to_frame()
        caught_text = sorted({str(w.message) for w in caught})
        frame["warnings"] = " | ".join(caught_text) or None
        frame = with_identity(frame, cell)
        results.write_frame(("cells", cell.key, "result.parquet"), _tidy(frame))
        results.remove("cells", cell.key, "error.json")
        meta = {
            "analysis": cell.analysis,
            "cell": dataclasses.asdict(cell),
            "headline": result.headline,
            "provenance": result.provenance,
            "warnings": caught_text,
        }
        results.write_json(("cells", cell.key, "result.json"), meta)  # last: marks it finished
        return {"error": None, "warnings": meta["warnings"]}

    return timed(work)


def _run_acts(cell: Cell, stores: StoreLocation):
    from workbench.analysis.registry import get_analysis
    from workbench.analysis.sources import Source
    from workbench.store import ActivationStore

    assert cell.capture is not None
    store = ActivationStore(stores.fetch(cell.capture))
    store_b = None
    if cell.capture_b is not None and cell.capture_b != cell.capture:
        store_b = ActivationStore(stores.fetch(cell.capture_b))
    source = Source.from_store(store, cell.site, cell.label, store_b, cell.site_b)
    analysis = get_analysis(cell.analysis)
    return analysis.run(source, analysis.params(**cell.params))


def _run_trajectory(cell: Cell, results: ResultStore):
    """The upstream cells' `metric` over steps as an (n, 2) = (step, value) array."""
    from workbench.analysis.registry import get_analysis
    from workbench.analysis.sources import Source

    points = []
    for key in cell.upstream:
        if not results.exists("cells", key, "result.json"):
            raise InputError(f"upstream cell {key} has no result (it failed or did not run)")
        frame = results.read_frame("cells", key, "result.parquet")
        rows = frame[frame["metric"] == cell.metric]
        if len(rows) != 1:
            metrics = sorted(frame["metric"].unique())
            raise InputError(
                f"upstream cell {key} has {len(rows)} rows of metric {cell.metric!r} (need one); "
                f"its metrics: {', '.join(map(str, metrics))}"
            )
        points.append((float(rows["step"].iloc[0]), float(rows["value"].iloc[0])))
    analysis = get_analysis(cell.analysis)
    source = Source(acts=np.array(sorted(points)), provenance={"upstream": list(cell.upstream)})
    return analysis.run(source, analysis.params(**cell.params))


def record_failure(results: ResultStore, cell: Cell, error: str, trace: str = "") -> None:
    results.write_json(
        ("cells", cell.key, "error.json"),
        {"cell": dataclasses.asdict(cell), "error": error, "traceback": trace},
    )


def with_identity(frame: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    """`frame` with the cell's identity columns (cell, entry, model, step, ...) in front; a
    column the analysis itself wrote (e.g. its own `site`) is kept."""
    frame = frame.copy()
    for column, value in reversed(cell.columns().items()):
        if column not in frame.columns:
            frame.insert(0, column, value)
    return frame


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns parquet can hold: an object column of mixed types becomes text."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            kinds = {type(v) for v in frame[column] if v is not None and v == v}
            if len(kinds) > 1 or (kinds and not kinds <= {str}):
                frame[column] = [None if v is None or v != v else str(v) for v in frame[column]]
    return frame


def gather(plan: Plan, results: ResultStore) -> pd.DataFrame:
    """Concatenate the finished cells' frames in plan order into OUT/results.parquet."""
    frames = [
        with_identity(results.read_frame("cells", c.key, "result.parquet"), c)
        for c in plan.cells
        if results.exists("cells", c.key, "result.json")
    ]
    frame = _tidy(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame()
    results.write_frame((RESULTS,), frame)
    return frame


def write_plan(plan: Plan, results: ResultStore) -> None:
    """OUT/plan.json: the spec text and every cell, so `batch status` needs only OUT."""
    payload = {
        "name": plan.spec.name,
        "spec_path": plan.spec.path,
        "spec": plan.spec.text,
        "stores": plan.stores,
        "estimate": plan.estimate,
        "captures": [dataclasses.asdict(c) for c in plan.captures],
        "cells": [dataclasses.asdict(c) for c in plan.cells],
    }
    results.write_json(("plan.json",), payload)


def batch_status(out: str) -> dict[str, Any]:
    """Done, failed and pending cells of the batch at `out` (from its plan.json)."""
    results = ResultStore(out)
    if not results.exists("plan.json"):
        raise InputError(
            f"{out!r} holds no batch (no plan.json): run `workbench batch run SPEC` first"
        )
    plan = results.read_json("plan.json")
    done, failed, pending = [], [], []
    for cell in plan["cells"]:
        if results.exists("cells", cell["key"], "result.json"):
            done.append(cell["key"])
        elif results.exists("cells", cell["key"], "error.json"):
            error = results.read_json("cells", cell["key"], "error.json")["error"]
            failed.append({**_brief(cell), "error": error})
        else:
            pending.append(cell["key"])
    return {
        "name": plan["name"],
        "cells": len(plan["cells"]),
        "done": len(done),
        "failed": len(failed),
        "pending": len(pending),
        "failures": failed,
    }


def _brief(cell: dict[str, Any]) -> dict[str, Any]:
    return {
        k: cell[k]
        for k in ("key", "entry", "analysis", "model", "step", "dataset", "site", "site_b")
    }


def read_results(out: str) -> pd.DataFrame:
    """The gathered tidy frame of the batch at `out`."""
    results = ResultStore(out)
    if not results.exists(RESULTS):
        raise InputError(f"{out!r} has no {RESULTS}: run `workbench batch run SPEC` first")
    return results.read_frame(RESULTS)


def plan_summary(plan: Plan) -> dict[str, Any]:
    """JSON-ready overview of a plan for `batch plan`."""
    return {
        "name": plan.spec.name,
        "out": plan.out,
        "stores": plan.stores,
        "estimate": plan.estimate,
        "captures": [
            {
                "key": c.key,
                "model": c.checkpoint.label,
                "dataset": c.dataset.dataset,
                "sites": list(c.sites),
            }
            for c in plan.captures
        ],
        "cells": [
            {
                "key": c.key,
                **json.loads(json.dumps(c.columns(), default=str)),
                "analysis": c.analysis,
            }
            for c in plan.cells
        ],
    }
