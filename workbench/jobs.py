"""Jobs: the heavy work started from the web app (a capture, an SAE training, a batch run), each
a detached process that outlives the page, a reload and the app server.

    job = start_capture(model="toy-lm", dataset="grammar-lm", sites="blocks.*.hook_resid_post",
                        out="stores/toy-lm-grammar")
    job = read_job(job.id)            # job.state, job.progress, job.elapsed_s(), log_tail(job)
    cancel_job(job.id)                # SIGTERM to its process group, recorded as cancelled
    delete_job(job.id)                # a finished job's folder RUNS/jobs/<id> (not its output)

At most `max_jobs()` jobs run at once per runs directory ($WORKBENCH_MAX_JOBS, default 1); the
others read "queued (2nd)" and so on, and start in the order they were created.

A job runs one of a fixed set of commands, each built here as an argv list from validated fields
(never a shell string; values passed as `--option=value`, so none is read as an option):

- capture: `workbench capture` of a dataset through a model (zoo, minilm, or a Hugging Face
  folder under RUNS/models/) into a store under the runs directory;
- sae: `workbench sae train` on a store's site, then `workbench sae features` into OUT/features
  (what the SAE features page reads);
- batch: `workbench batch run` of a spec file inside the runs directory, or of pasted YAML saved
  as the job's `spec.yaml`, validated by the batch module's own loader first.

Every output folder lies inside the runs directory (`workbench.runsdir.inside_runs`); a bad field
raises `InputError` naming the value and what would be valid, and starts nothing. The job's
folder and state: `workbench.job_state`; its runner: `workbench.job_runner`; its progress:
`workbench.job_progress`.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from workbench.errors import InputError, closest
from workbench.job_progress import batch_progress, capture_progress, sae_progress
from workbench.job_state import (
    JOBS_DIR,
    MAX_JOBS_ENV,
    Job,
    cancel_job,
    delete_finished_jobs,
    delete_job,
    launch,
    list_jobs,
    log_tail,
    max_jobs,
    new_id,
    read_job,
    wait_job,
)
from workbench.runsdir import inside_runs, runs_root

SAE_ARCHITECTURES = ("topk", "batchtopk", "relu")
STORE_DTYPES = ("float32", "float16", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")
_SITES = re.compile(r"^[A-Za-z0-9_*][A-Za-z0-9_.*]*$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_.+-]+$")

__all__ = [
    "DEVICES",
    "JOBS_DIR",
    "MAX_JOBS_ENV",
    "SAE_ARCHITECTURES",
    "STORE_DTYPES",
    "Job",
    "batch_progress",
    "batch_specs",
    "cancel_job",
    "capture_models",
    "capture_progress",
    "delete_finished_jobs",
    "delete_job",
    "list_jobs",
    "log_tail",
    "max_jobs",
    "read_job",
    "sae_progress",
    "start_batch",
    "start_capture",
    "start_sae",
    "wait_job",
]


def start_capture(
    *,
    model: str,
    dataset: str,
    sites: str,
    out: str,
    n_examples: int | None = 256,
    positions: str = "all",
    batch_size: int = 32,
    max_length: int = 128,
    store_dtype: str = "float32",
    device: str = "auto",
    overwrite: bool = False,
    root: Path | None = None,
) -> Job:
    """Start `workbench capture` of `dataset` through `model` at `sites` into the store
    RUNS/`out`. `model`: a zoo name (built on demand), optionally `@STEP`, `minilm`, or a Hugging
    Face folder under RUNS/models/ (its path relative to the runs directory)."""
    from workbench.data import dataset_names
    from workbench.positions import parse_positions

    root = (root or runs_root()).resolve()
    model_arg = _capture_model(model, root)
    _choice("dataset", dataset, dataset_names())
    _choice("store_dtype", store_dtype, STORE_DTYPES)
    _choice("device", device, DEVICES)
    patterns = _sites(sites)
    out_dir = _out(out, root)
    parse_positions(positions)
    argv = [
        *_workbench(),
        "capture",
        f"--model={model_arg}",
        f"--sites={','.join(patterns)}",
        f"--dataset={dataset}",
        f"--out={out_dir}",
        f"--positions={positions}",
        f"--batch-size={_int('batch_size', batch_size, 1, 4096)}",
        f"--max-length={_int('max_length', max_length, 1, 8192)}",
        f"--store-dtype={store_dtype}",
        f"--device={device}",
    ]
    if n_examples is not None:
        argv.append(f"--n-examples={_int('n_examples', n_examples, 1, 10_000_000)}")
    if overwrite:
        argv.append("--overwrite")
    fields = {
        "model": model,
        "dataset": dataset,
        "sites": ",".join(patterns),
        "n_examples": n_examples,
        "positions": positions,
    }
    title = f"capture {model} on {dataset} at {','.join(patterns)}"
    return launch(root, new_id("capture"), "capture", title, [argv], out_dir, fields)


def start_sae(
    *,
    store: str,
    site: str,
    out: str,
    arch: str = "topk",
    d_sae: int | None = None,
    k: int = 16,
    steps: int = 500,
    batch_size: int = 256,
    lr: float = 4e-4,
    seed: int = 0,
    root: Path | None = None,
) -> Job:
    """Start `workbench sae train` on `site` of the store RUNS/`store` into RUNS/`out`, then
    `workbench sae features` into RUNS/`out`/features (what the SAE features page shows).
    `d_sae`: latents (None: 8 x the site's width); `k`: active latents per row (topk,
    batchtopk)."""
    from workbench.runsdir import stores_by_path

    root = (root or runs_root()).resolve()
    stores = stores_by_path(root)
    store = _choice("store", store, list(stores))
    site = _choice("site", site, stores[store]["sites"])
    _choice("arch", arch, SAE_ARCHITECTURES)
    store_dir, out_dir = root / store, _out(out, root)
    if out_dir.is_relative_to(store_dir):
        raise InputError(f"out {out!r} lies inside the store {store!r}; pick a folder beside it")
    if (out_dir / "sae.safetensors").exists():
        raise InputError(f"out {out!r} already holds a trained SAE; pick another folder")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr <= 1:
        raise InputError(f"lr must be a number in (0, 1], got {lr!r}")
    train = [
        *_workbench(),
        "sae",
        "train",
        f"--store={store_dir}",
        f"--site={site}",
        f"--out={out_dir}",
        f"--arch={arch}",
        f"--k={_int('k', k, 1, 65536)}",
        f"--steps={_int('steps', steps, 1, 10_000_000)}",
        f"--batch-size={_int('batch_size', batch_size, 1, 1_000_000)}",
        f"--lr={float(lr)!r}",
        f"--seed={_int('seed', seed, 0, 2**31 - 1)}",
    ]
    if d_sae is not None:
        train.append(f"--d-sae={_int('d_sae', d_sae, 1, 1_048_576)}")
    features = [
        *_workbench(),
        "sae",
        "features",
        f"--sae={out_dir}",
        f"--store={store_dir}",
        f"--site={site}",
        f"--out={out_dir / 'features'}",
        "--html=none",
    ]
    fields = {"store": store, "site": site, "arch": arch, "d_sae": d_sae, "k": k, "steps": steps}
    title = f"SAE ({arch}) on {store} {site}"
    return launch(root, new_id("sae"), "sae", title, [train, features], out_dir, fields)


def start_batch(
    *,
    spec: str | None = None,
    spec_text: str | None = None,
    out: str | None = None,
    workers: int = 1,
    root: Path | None = None,
) -> Job:
    """Start `workbench batch run` of the spec file RUNS/`spec`, or of `spec_text` (YAML, saved
    as the job's `spec.yaml`), with results in RUNS/`out` (default batch/<spec name>). The spec
    is validated by the batch module's own loader first."""
    from workbench.batch.spec import load_spec, parse_spec

    root = (root or runs_root()).resolve()
    if (spec is None) == (spec_text is None):
        raise InputError("give a batch spec file inside the runs directory or spec text, not both")
    job_id = new_id("batch")
    folder = root / JOBS_DIR / job_id
    files: dict[str, str] = {}
    if spec is not None:
        path = inside_runs(spec, root)
        if path is None or path.suffix not in (".yaml", ".yml"):
            raise InputError(
                f"batch spec {spec!r} must be a .yaml file inside the runs directory {root}"
            )
        parsed = load_spec(path)
    else:
        assert spec_text is not None
        path = folder / "spec.yaml"
        parsed = parse_spec(spec_text, "pasted spec")
        files["spec.yaml"] = spec_text
    if parsed.stores is not None:
        stores = Path(parsed.stores)
        located = stores.resolve() if stores.is_absolute() else (folder / stores).resolve()
        if "://" in parsed.stores or not located.is_relative_to(root):
            raise InputError(
                f"the spec's stores {parsed.stores!r} lie outside the runs directory {root}; "
                "leave it out (stores go beside the results) or name a folder inside it"
            )
    out_dir = _out(out or f"batch/{parsed.name}", root)
    argv = [
        *_workbench(),
        "batch",
        "run",
        str(path),
        f"--out={out_dir}",
        f"--workers={_int('workers', workers, 1, os.cpu_count() or 1)}",
    ]
    fields = {"spec": spec or "(pasted)", "name": parsed.name, "workers": workers}
    title = f"batch {parsed.name}"
    return launch(root, job_id, "batch", title, [argv], out_dir, fields, files)


def capture_models(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Models a capture job may name -> {"kind", "dataset", "sites", "built"}: the zoo (built on
    demand), `minilm`, and Hugging Face folders under RUNS/models/ (relative to the runs dir)."""
    from workbench.zoo import get_recipe, list_zoo

    root = (root or runs_root()).resolve()
    models: dict[str, dict[str, Any]] = {}
    for row in list_zoo():
        sites = "blocks.*.hook_resid_post" if row["name"] == "minilm" else None
        models[row["name"]] = {
            "kind": row["kind"],
            "dataset": row["dataset"],
            "sites": sites or get_recipe(row["name"]).sites,
            "built": row["built"],
        }
    for config in sorted((root / "models").glob("*/config.json")):
        if _PATH_PART.match(config.parent.name):
            name = f"models/{config.parent.name}"
            models[name] = {
                "kind": "folder",
                "dataset": "text",
                "sites": "blocks.*.hook_resid_post",
                "built": True,
            }
    return models


def batch_specs(root: Path | None = None, max_depth: int = 3) -> list[str]:
    """YAML files under the runs directory (outside jobs/), relative to it, sorted."""
    root = (root or runs_root()).resolve()
    found = []
    for depth in range(max_depth):  # level by level: never walks a store's chunk files
        for pattern in ("*.yaml", "*.yml"):
            for path in root.glob("/".join(["*"] * depth + [pattern])):
                relative = path.relative_to(root)
                if relative.parts[0] != JOBS_DIR:
                    found.append(str(relative))
    return sorted(found)


def _workbench() -> list[str]:
    return [sys.executable, "-m", "workbench"]


def _choice(name: str, value: Any, valid: list[str] | tuple[str, ...]) -> str:
    if value not in valid:
        near = closest(str(value), valid) if valid else []
        raise InputError(
            f"{name} {value!r} is not one of the valid choices"
            + (f"; closest: {', '.join(near)}" if near else "; there are none")
            + (f" (all: {', '.join(valid)})" if 0 < len(valid) <= 20 else "")
        )
    return value


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _sites(sites: str) -> list[str]:
    patterns = [p.strip() for p in str(sites).split(",") if p.strip()]
    bad = [p for p in patterns if not _SITES.match(p)]
    if not patterns or bad:
        raise InputError(
            f"sites {sites!r}: give site names or patterns separated by commas, made of letters, "
            "digits, '_', '.' and '*', e.g. 'blocks.*.hook_resid_post'"
            + (f"; bad: {bad}" if bad else "")
        )
    return patterns


def _capture_model(model: str, root: Path) -> str:
    """The `--model` value of a valid `model` (module docstring of `start_capture`)."""
    models = capture_models(root)
    name, at, step = str(model).partition("@")
    if name in models:
        kind = models[name]["kind"]
        if not at:
            return str(root / name) if kind == "folder" else model
        if kind in ("causal-lm", "classifier") and (step.isdigit() or step in ("first", "last")):
            return model
    raise InputError(
        f"model {model!r} is not a zoo model (NAME, or NAME@STEP with STEP a number, first or "
        "last), minilm, or a folder under models/ in the runs directory; closest: "
        + ", ".join(closest(model, list(models)))
    )


def _out(out: str, root: Path) -> Path:
    """RUNS/`out`, which must lie inside the runs directory and outside jobs/."""
    path = inside_runs(str(out), root)
    if path is None or path == root:
        raise InputError(
            f"out {out!r} must be a folder inside the runs directory {root}, given relative to "
            "it (e.g. stores/toy-lm-grammar), with no '..' or absolute path"
        )
    if path.is_relative_to(root / JOBS_DIR):
        raise InputError(f"out {out!r} lies in {JOBS_DIR}/, which holds the jobs themselves")
    if path.exists() and not path.is_dir():
        raise InputError(f"out {out!r} exists and is not a folder")
    return path
