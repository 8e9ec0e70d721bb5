"""`workbench batch plan|run|status|report`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench import console

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="run analyses over models, checkpoints and datasets from a YAML spec",
        description="Batch analyses from a YAML spec (see workbench/batch/spec.py and the README). "
        "Cells are keyed by a content hash of their inputs: a rerun skips finished cells and a "
        "killed run resumes.",
    )
    actions = p.add_subparsers(dest="batch_command", required=True, metavar="ACTION")
    a = actions.add_parser(
        "plan", help="show the expanded captures and cells and the work estimate"
    )
    a.add_argument("spec")
    a.add_argument("--out", help="results folder or fsspec URL (default: the spec's out)")
    a.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    a = actions.add_parser("run", help="run the unfinished cells")
    a.add_argument("spec")
    a.add_argument("--out", help="results folder or fsspec URL (default: the spec's out)")
    a.add_argument("--executor", default="local", choices=["local", "ray"])
    a.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local processes (1: in this process); with ray and no --ray-address, the CPUs "
        "of the local Ray (1: all cores)",
    )
    a.add_argument(
        "--ray-address",
        help="an existing Ray cluster: auto, or ray://HOST:10001 (default: a local Ray, or $RAY_ADDRESS)",
    )
    a.add_argument("--report", action="store_true", help="write report.html when done")
    a = actions.add_parser("status", help="done, failed and pending cells")
    a.add_argument("target", help="the spec, or the batch's results folder")
    a.add_argument("--json", action="store_true")
    a = actions.add_parser("report", help="write an HTML report with the main plots")
    a.add_argument("target", help="the spec, or the batch's results folder")
    a.add_argument("--html", help="output file (default OUT/report.html)")
    p.set_defaults(run=run_command)


def task_ticker(bar: console.Progress, lines: bool = True) -> Callable[[str], None]:
    """`run_batch`'s `log` for a progress bar: a tick per finished task (its line as the bar's
    note). Its lines are log lines on stderr (where the web app's jobs read them) when `lines`
    and no live bar stands for them, else at INFO (`-v` shows them)."""

    def task_done(line: str) -> None:
        if lines and not bar.live:
            console.log(line)
        else:
            log.info(line)
        if line.startswith("["):  # `[capture i/n] ...` and `[cell i/n] ...`; not the head count
            bar.note(line)
            bar.update()

    return task_done


def _out_of(target: str) -> str:
    """A results folder, or the `out` of the spec file `target`."""
    path = Path(target)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        from workbench.batch.spec import load_spec

        return load_spec(path).out
    return target


def run_command(args: argparse.Namespace) -> int:
    from workbench.batch import batch_status, load_spec, make_plan, run_batch
    from workbench.batch.report import write_report
    from workbench.batch.run import plan_summary

    if args.batch_command == "plan":
        plan = make_plan(load_spec(args.spec, out=args.out))
        summary = plan_summary(plan)
        if args.json:
            print(json.dumps(summary, indent=2, default=str))
            return 0
        _print_plan(summary)
        return 0
    if args.batch_command == "run":
        plan = make_plan(load_spec(args.spec, out=args.out), estimate=False)
        console.log(
            f"batch {plan.spec.name}: {len(plan.captures)} captures, {len(plan.cells)} cells -> {plan.out}"
        )
        with console.progress(None, f"batch {plan.spec.name}", unit="tasks") as bar:
            status = run_batch(
                plan,
                executor=args.executor,
                workers=args.workers,
                address=args.ray_address,
                log=task_ticker(bar),
            )
        print(
            f"done {status['done']}, failed {status['failed']}, pending {status['pending']} "
            f"of {status['cells']} cells in {status['wall_seconds']:.1f} s; results: {plan.out}/results.parquet"
        )
        if args.report:
            print(f"report: {write_report(plan.out)}")
        _print_failures(status)
        return 1 if status["failed"] else 0
    if args.batch_command == "status":
        status = batch_status(_out_of(args.target))
        if args.json:
            print(json.dumps(status, indent=2, default=str))
        else:
            print(
                f"batch {status['name']}: {status['done']} done, {status['failed']} failed, "
                f"{status['pending']} pending of {status['cells']} cells"
            )
            _print_failures(status)
        return 0
    print(f"report: {write_report(_out_of(args.target), args.html)}")
    return 0


def _print_plan(summary: dict[str, Any]) -> None:
    estimate = summary["estimate"]
    print(f"batch {summary['name']} -> {summary['out']} (stores: {summary['stores']})")
    print(f"{len(summary['captures'])} captures:")
    for c in summary["captures"]:
        print(f"  {c['key']}  {c['model']:<24} {c['dataset']:<12} {len(c['sites'])} sites")
    print(f"{len(summary['cells'])} cells:")
    for c in summary["cells"]:
        where = c["model"] if c["step"] is None else f"{c['model']}@{c['step']}"
        pair = f" vs {c['site_b']}" if c["site_b"] else ""
        print(f"  {c['key']}  {c['analysis']:<16} {where:<24} {c['dataset']:<12} {c['site']}{pair}")
    print(
        f"work: {estimate['forward_examples']} examples in {estimate['forward_batches']} forward "
        f"batches; about {estimate['store_bytes'] / 2**20:.1f} MiB of activations to store"
    )


def _print_failures(status: dict[str, Any]) -> None:
    for failure in status["failures"]:
        where = (
            failure["model"] if failure["step"] is None else f"{failure['model']}@{failure['step']}"
        )
        print(
            f"  FAILED {failure['key']} {failure['analysis']} {where} {failure['site']}: {failure['error']}",
            file=sys.stderr,
        )
