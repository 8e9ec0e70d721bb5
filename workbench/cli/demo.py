"""`workbench demo`: the whole pipeline on the embedded defaults, offline.

Steps, each one line on stderr when it ends (`[ 3/15] store toy-lm  12 s`), with one progress bar
while it runs (on a terminal):

1. builds the model zoo if it is missing (cached: a second run reuses it);
2. captures every zoo model's last checkpoint on its own dataset, and the real pretrained MiniLM
   on offline English, into stores under `<out>/stores/`, and runs every registered analysis
   that needs only activations on every stored site, saving the results under
   `<out>/results/<analysis>/<store>/<site>/`. MiniLM comes with the extra `minilm`; without
   it that step is skipped with one line that names the extra;
3. runs the demo steps analysis packages register (entry-point group `workbench.demo`): a
   steering sweep of toy-lm's sentiment direction, toy-lm's massive activations over its
   checkpoints, ...;
4. runs a small batch over toy-lm's checkpoints (`<out>/sweeps/toy-lm-dynamics/`: intrinsic
   dimension, anisotropy and a topic probe per layer and step), which the app's Batch page shows.

`run_demo` returns a `DemoReport`; `report_lines` turns it into the findings table (one row per
finding, aligned), where the results are, and the command that opens the app. Every step reuses
finished work: stores are resumable and complete ones are kept, results are recomputed only when
missing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import console
from workbench.errors import MissingExtraError

log = logging.getLogger(__name__)

MINILM_SITES = "hook_embed,blocks.*.hook_resid_post"
DEMO_GROUP = "workbench.demo"


@dataclass(frozen=True)
class Finding:
    """One row of the findings table: the step it came from, what it is about, what was found."""

    step: str
    subject: str
    text: str


@dataclass(frozen=True)
class Step:
    """One step of the demo: its name (in its step line) and the work, which returns findings."""

    name: str
    run: Callable[[], list[Finding]]


@dataclass
class DemoReport:
    """What the demo found, what it skipped (step name -> the reason, naming the extra), where."""

    out: Path
    findings: list[Finding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "findings": [vars(f) for f in self.findings],
            "skipped": self.skipped,
            "app": app_command(self.out),
        }


def app_command(out: Path) -> str:
    return f"workbench app --runs {out}"


def split_finding(step: str, line: str) -> Finding:
    """A step's summary line `subject: finding` as a table row (the whole line when it has no
    `: `)."""
    subject, sep, text = line.partition(": ")
    return Finding(step, subject, text) if sep else Finding(step, step, line)


def run_demo(
    out: Path,
    n_examples: int = 256,
    device: str = "auto",
    zoo_root: Path | None = None,
    progress: bool = True,
) -> DemoReport:
    """Run the demo into the runs directory `out`, one step line each on stderr (see the module
    docstring); a step whose optional package is missing is skipped with one line."""
    from workbench.devices import resolve_device

    resolve_device(device)  # a bad device fails now, not after the zoo's minutes of training
    steps = demo_steps(out, n_examples, device, zoo_root, progress)
    report = DemoReport(out)
    console.log(
        f"demo: {len(steps)} steps into {out}, reusing finished work (the first run trains the "
        "zoo and takes several minutes)"
    )
    width = max(len(step.name) for step in steps)
    for index, step in enumerate(steps, 1):
        label = f"[{index:>{len(str(len(steps)))}}/{len(steps)}] {step.name:<{width}}"
        timer = console.Timer()
        try:
            with console.progress(None, label.rstrip(), unit="", enabled=progress):
                report.findings.extend(step.run())
        except MissingExtraError as exc:
            report.skipped[step.name] = str(exc)
            console.log(f"{label}  skipped: {exc}")
            continue
        console.log(f"{label}  {timer.elapsed()}")
    return report


def report_lines(report: DemoReport) -> list[str]:
    """The findings table, where the results are, and the command that opens the app."""
    out = report.out
    folders = sorted(p.name + "/" for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    return [
        "findings:",
        *console.aligned([(f.subject, f.text) for f in report.findings]),
        f"results in {out}/: {', '.join(folders)}",
        f"open the app: {app_command(out)}",
    ]


def demo_steps(
    out: Path, n_examples: int, device: str, zoo_root: Path | None, progress: bool = True
) -> list[Step]:
    """The demo's steps, in order: the zoo, one store per model, the registered steps, the batch."""
    from workbench import zoo

    steps = [Step("zoo", functools.partial(_zoo_step, zoo_root))]
    for name, recipe in zoo.recipes().items():
        load = functools.partial(_last_checkpoint, name, zoo_root, device)
        steps.append(
            _store_step(out, name, recipe.dataset, recipe.sites, n_examples, progress, load)
        )
    minilm = functools.partial(_load_minilm, device)
    steps.append(
        _store_step(out, "minilm-text", "text", MINILM_SITES, n_examples, progress, minilm)
    )
    steps.extend(_registered_steps(out, zoo_root, device))
    steps.append(Step("batch toy-lm-dynamics", lambda: [_batch_step(out, zoo_root, device)]))
    return steps


def _zoo_step(zoo_root: Path | None) -> list[Finding]:
    """Build every zoo model that is missing; one finding per model: its metric and verdict."""
    from workbench import zoo

    for name in zoo.recipes():
        zoo.build(name, zoo_root)
    findings = []
    for row in zoo.list_zoo(zoo_root):
        if row["value"] is not None:
            verdict = "meets" if row["passed"] else "MISSES"
            findings.append(
                Finding(
                    "zoo",
                    f"zoo {row['name']}",
                    f"{row['metric']} = {row['value']:.4g} ({verdict} {row['threshold']})",
                )
            )
    return findings


def _last_checkpoint(name: str, zoo_root: Path | None, device: str) -> Any:
    from workbench import zoo

    series = zoo.load_series(name, zoo_root)
    return series.load(series.steps[-1], device=device)


def _load_minilm(device: str) -> Any:
    """The pretrained MiniLM; raises `MissingExtraError` (the step is skipped) without the extra."""
    from workbench.models import load_model

    return load_model("minilm", device=device)


def _store_step(
    out: Path,
    store_name: str,
    dataset: str,
    sites: str,
    n_examples: int,
    progress: bool,
    load: Callable[[], Any],
) -> Step:
    """The step that captures `dataset` at `sites` of the model `load` returns into
    `<out>/stores/<store_name>` and runs the activations-only analyses on it."""

    def run() -> list[Finding]:
        from workbench.data import load_dataset
        from workbench.store.capture import capture_to_store

        handle = load()
        path = out / "stores" / store_name
        store = capture_to_store(
            handle,
            sites,
            load_dataset(dataset, n_examples),
            path,
            dataset=dataset,
            max_length=128,
            progress=progress,
            overwrite=_model_changed(path, handle.weights_hash),
        )
        done = _analyse(store, out, store_name)
        text = f"{store.n_rows:,} rows x {len(store.sites)} sites; {done} results"
        return [Finding(f"store {store_name}", f"store {store_name}", text)]

    return Step(f"store {store_name}", run)


def _model_changed(path: Path, weights_hash: str | None) -> bool:
    """True when the demo's store at `path` was captured from other weights than the model's now
    (a zoo recipe changed and the model was rebuilt): the demo owns its stores, so it recaptures
    (and `_analyse` recomputes the results of the old store) rather than refusing the new spec."""
    from workbench.errors import StoreError
    from workbench.store.manifest import read_manifest

    try:
        manifest = read_manifest(path)
    except StoreError:
        return False  # unreadable: the writer's own refusal explains it
    if manifest is None or manifest["spec"].get("weights_hash") == weights_hash:
        return False
    console.log(f"{path.name}: the model changed since this store was captured; recapturing")
    return True


def _registered_steps(out: Path, zoo_root: Path | None, device: str) -> list[Step]:
    """The demo steps that analysis packages register (entry-point group `workbench.demo`:
    `step(out, zoo_root, device) -> str`, a summary line `subject: finding`), in name order.
    Each keeps work that is already finished under `out`."""
    from importlib.metadata import entry_points

    steps = []
    for entry in sorted(entry_points(group=DEMO_GROUP), key=lambda e: e.name):

        def run(entry: Any = entry) -> list[Finding]:
            return [split_finding(entry.name, entry.load()(out, zoo_root, device))]

        steps.append(Step(entry.name, run))
    return steps


DEMO_BATCH = """\
name: toy-lm-dynamics
models:
  - model: toy-lm
    steps: {every: 2}
datasets:
  - {dataset: grammar-lm, n_examples: 160, max_length: 48}
sites: ["blocks.*.hook_resid_post"]
analyses:
  - analysis: twonn
    params: {max_samples: 2000}
  - analysis: anisotropy
  - analysis: probe
    label: topic
    params: {label_level: last}
"""


def _batch_step(out: Path, zoo_root: Path | None, device: str) -> Finding:
    """The demo batch: toy-lm's geometry and topic decodability over training (resumable)."""
    import yaml

    from workbench.batch import make_plan, run_batch
    from workbench.batch.cli import task_ticker
    from workbench.batch.report import write_report
    from workbench.batch.spec import parse_spec

    folder = out / "sweeps" / "toy-lm-dynamics"
    spec = yaml.safe_load(DEMO_BATCH)
    spec.update(out=str(folder), device=device)
    if zoo_root is not None:
        spec["zoo_root"] = str(zoo_root)
    text = yaml.safe_dump(spec, sort_keys=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(text)
    plan = make_plan(parse_spec(text, str(folder / "spec.yaml")), estimate=False)
    with console.progress(None, unit="tasks") as bar:  # inside the step's bar: its label
        status = run_batch(plan, log=task_ticker(bar, lines=False))
    write_report(str(folder))
    return Finding(
        "batch toy-lm-dynamics",
        "batch toy-lm-dynamics",
        f"{status['done']} of {status['cells']} cells done ({status['failed']} failed) over "
        f"{spec['models'][0]['model']} checkpoints; {folder}/results.parquet, report.html",
    )


def _analyse(store: Any, out: Path, store_name: str) -> int:
    """Run every activations-only analysis on every site of `store`; returns how many results
    exist afterwards (finished ones are kept, not recomputed)."""
    from workbench.analysis.registry import analyses
    from workbench.analysis.results import Result
    from workbench.analysis.sources import Source

    todo = [
        (name, analysis, site)
        for name, analysis in analyses().items()
        if set(analysis.inputs) == {"acts"}  # others need labels, a second store or weights
        for site in store.sites
    ]
    count = 0
    with console.progress(len(todo), "analyses", unit="result") as bar:
        for name, analysis, site in todo:
            bar.update()
            target = out / "results" / name / store_name / site
            if (target / "result.json").is_file():
                try:
                    kept = Result.load(target).provenance.get("spec") == store.spec
                except Exception:  # a broken result is recomputed
                    log.warning("recomputing unreadable result %s", target)
                    kept = False
                if kept:  # a result of another store (an older capture) is recomputed
                    count += 1
                    continue
            analysis.run(Source.from_store(store, site), analysis.params()).save(target)
            count += 1
    return count
