"""`workbench demo`: the whole pipeline on the embedded defaults, offline.

1. builds the model zoo if it is missing (cached: a second run reuses it);
2. captures every zoo model's last checkpoint on its own dataset, and the real pretrained MiniLM
   on offline English, into stores under `<out>/stores/`;
3. runs every registered analysis that needs only activations on every stored site and saves
   the results under `<out>/results/<analysis>/<store>/<site>/`;
   then runs the demo steps analysis packages register (entry-point group `workbench.demo`):
   a steering sweep of toy-lm's sentiment direction, toy-lm's massive activations over its
   checkpoints, ...;
4. runs a small batch over toy-lm's checkpoints (`<out>/sweeps/toy-lm-dynamics/`: intrinsic
   dimension, anisotropy and a topic probe per layer and step), which the app's Batch page shows;
5. returns a short summary; the CLI then opens the app (unless `--no-app`, or not interactive).

Every step reuses finished work: stores are resumable and complete ones are kept, results are
recomputed only when missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from workbench.data import load_dataset
from workbench.models import ModelHandle, load_model
from workbench.store.capture import capture_to_store

log = logging.getLogger(__name__)

MINILM_SITES = "hook_embed,blocks.*.hook_resid_post"


@dataclass(frozen=True)
class DemoModel:
    """One model of the demo and where its activations go."""

    store: str  # store name under <out>/stores
    dataset: str
    sites: str
    n_examples: int


def _zoo_models(
    n_examples: int, zoo_root: Path | None, device: str
) -> Iterator[tuple[DemoModel, ModelHandle]]:
    """Each zoo model's last checkpoint (the zoo is built first where missing)."""
    from workbench import zoo

    for name, recipe in zoo.recipes().items():
        series = zoo.load_series(name, zoo_root)
        handle = series.load(series.steps[-1], device=device)
        yield DemoModel(name, recipe.dataset, recipe.sites, n_examples), handle


def run_demo(
    out: Path,
    n_examples: int = 256,
    device: str = "auto",
    zoo_root: Path | None = None,
    progress: bool = True,
) -> list[str]:
    """Run the demo into the runs directory `out`; returns the summary lines to print."""
    from workbench import zoo

    lines: list[str] = []
    models = [
        *_zoo_models(n_examples, zoo_root, device),
        (
            DemoModel("minilm-text", "text", MINILM_SITES, n_examples),
            load_model("minilm", device=device),
        ),
    ]
    for row in zoo.list_zoo(zoo_root):
        if row["value"] is not None:
            verdict = "meets" if row["passed"] else "MISSES"
            lines.append(
                f"zoo {row['name']:<11} {row['metric']} = {row['value']:.4g} ({verdict} {row['threshold']})"
            )
    for spec, handle in models:
        examples = load_dataset(spec.dataset, spec.n_examples)
        store = capture_to_store(
            handle,
            spec.sites,
            examples,
            out / "stores" / spec.store,
            dataset=spec.dataset,
            max_length=128,
            progress=progress,
        )
        done = _analyse(store, out, spec.store)
        lines.append(
            f"store {spec.store:<12} {store.n_rows:>7} rows x {len(store.sites)} sites; "
            f"{done} results"
        )
    lines.extend(_extra_steps(out, zoo_root, device))
    lines.append(_batch_step(out, zoo_root, device))
    lines.append(f"results and stores: {out}; browse them with `workbench app --runs {out}`")
    return lines


DEMO_GROUP = "workbench.demo"


def _extra_steps(out: Path, zoo_root: Path | None, device: str) -> list[str]:
    """Run the demo steps that analysis packages register (entry-point group `workbench.demo`:
    `step(out, zoo_root, device) -> str`, a summary line), in name order. Each keeps work that
    is already finished under `out`."""
    from importlib.metadata import entry_points

    lines = []
    for entry in sorted(entry_points(group=DEMO_GROUP), key=lambda e: e.name):
        lines.append(entry.load()(out, zoo_root, device))
    return lines


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


def _batch_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """The demo batch: toy-lm's geometry and topic decodability over training (resumable)."""
    import yaml

    from workbench.batch import make_plan, run_batch
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
    status = run_batch(make_plan(parse_spec(text, str(folder / "spec.yaml")), estimate=False))
    write_report(str(folder))
    return (
        f"batch toy-lm-dynamics: {status['done']} of {status['cells']} cells done "
        f"({status['failed']} failed) over {spec['models'][0]['model']} checkpoints; "
        f"{folder}/results.parquet, report.html"
    )


def _analyse(store, out: Path, store_name: str) -> int:
    """Run every activations-only analysis on every site of `store`; returns how many results
    exist afterwards (finished ones are kept, not recomputed)."""
    from workbench.analysis.registry import analyses
    from workbench.analysis.results import Result
    from workbench.analysis.sources import Source

    count = 0
    for name, analysis in analyses().items():
        if set(analysis.inputs) != {"acts"}:
            continue  # needs labels, a second store or weights: not automatic
        for site in store.sites:
            target = out / "results" / name / store_name / site
            if (target / "result.json").is_file():
                try:
                    Result.load(target)
                    count += 1
                    continue
                except Exception:  # a broken result is recomputed
                    log.warning("recomputing unreadable result %s", target)
            analysis.run(Source.from_store(store, site), analysis.params()).save(target)
            count += 1
    return count
