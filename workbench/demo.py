"""`workbench demo`: the whole pipeline on the embedded defaults, offline.

1. builds the model zoo if it is missing (cached: a second run reuses it);
2. captures every zoo model's last checkpoint on its own dataset, and the real pretrained MiniLM
   on offline English, into stores under `<out>/stores/`;
3. runs every registered analysis that needs only activations on every stored site and saves
   the results under `<out>/results/<analysis>/<store>/<site>/`;
   sweeps toy-lm's positive-sentiment steering direction (sites x coefficients, with a random
   control) into `<out>/results/steering-sweep/` and its vectors into `<out>/vectors/`;
   tracks toy-lm's massive activations over its checkpoints into `<out>/massive/toy-lm/`;
4. returns a short summary; the CLI then opens the app (unless `--no-app`, or not interactive).

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
from workbench.pipeline import capture_to_store

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
        if spec.store == "toy-lm":
            lines.append(_steering(handle, out))
            lines.append(_massive_tracking(out, zoo_root))
    lines.append(f"results and stores: {out}; browse them with `workbench app --runs {out}`")
    return lines


def _massive_tracking(out: Path, zoo_root: Path | None) -> str:
    """Track toy-lm's massive activations over its checkpoints and ablate them at its last one
    (`analyses.massive_track`), into `<out>/massive/toy-lm` (kept if already there)."""
    from analyses.massive_track import run_job
    from workbench import zoo

    folder = out / "massive" / "toy-lm"
    if not (folder / "trajectory.parquet").is_file():
        texts = [e.text for e in load_dataset("grammar-lm", 16)]
        run_job(zoo.load_series("toy-lm", zoo_root), texts, folder)
    return f"massive activations of toy-lm over its checkpoints: {folder}"


def _steering(handle: ModelHandle, out: Path) -> str:
    """Sweep toy-lm's positive-sentiment direction over every block x 5 coefficients with a
    random control; saves the result and the vectors under `out` (kept if already there)."""
    from workbench.results import Result
    from workbench.steering.recipes import lm_sweep

    target = out / "results" / "steering-sweep" / "toy-lm" / "positive-sentiment"
    try:
        result = Result.load(target)
    except Exception:  # missing or unreadable: (re)compute
        from workbench.sites import expand_sites

        sites = expand_sites(handle.sites(), "blocks.*.hook_resid_pre")
        result, vectors = lm_sweep(
            handle, sites, "sentiment", 1, n_prompts=12, controls=1, max_new_tokens=6
        )
        for site, vector in vectors.items():
            vector.save(out / "vectors" / "toy-lm" / "positive-sentiment" / f"{site}.safetensors")
        result.save(target)
    best = result.headline["best_site"]
    effect = result.headline["effect_at_max_coeff"][best]
    return (
        f"steering toy-lm positive sentiment: best site {best}, target-minus-opposite mass "
        f"{effect['concept']:+.3f} at the largest coefficient (random direction: "
        f"{effect['control']:+.3f})"
    )


def _analyse(store, out: Path, store_name: str) -> int:
    """Run every activations-only analysis on every site of `store`; returns how many results
    exist afterwards (finished ones are kept, not recomputed)."""
    from workbench.registry import analyses
    from workbench.results import Result
    from workbench.sources import Source

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
