"""Jobs: the heavy work started from the web app (a capture, an SAE training, a batch run, ...),
each a detached process that outlives the page, a reload and the app server.

    job = start_job("capture", model="toy-lm", dataset="grammar-lm",
                    sites="blocks.*.hook_resid_post", out="stores/toy-lm-grammar")
    job = read_job(job.id)            # job.state, job.progress, job.elapsed_s(), log_tail(job)
    cancel_job(job.id)                # SIGTERM to its process group, recorded as cancelled
    delete_job(job.id)                # a finished job's folder RUNS/jobs/<id> (not its output)

At most `max_jobs()` jobs run at once per runs directory ($WORKBENCH_MAX_JOBS, default 1); the
others read "queued (2nd)" and so on, and start in the order they were created.

Which jobs there are is declared, not listed here: a `JobKind` (`workbench.analysis.plugins`,
entry points `workbench.jobs`) gives a job's fields, its `workbench ...` command lines (argv
lists, never a shell string; values passed as `--option=value`, so none is read as an option)
and the page that opens its output. An analysis family declares its own (the SAE family: train,
then write feature statistics); the two core verbs' are in `workbench_app.services.job_kinds`:

- `CAPTURE_JOB`: `workbench capture` of a dataset through a model (zoo, minilm, or a Hugging
  Face folder under RUNS/models/) into a store under the runs directory;
- `BATCH_JOB`: `workbench batch run` of a spec file inside the runs directory, or of pasted YAML
  saved as the job's `spec.yaml`, validated by the batch module's own loader first
  (`start_batch`, the one kind started its own way: its output folder comes from the spec).

This module resolves the field types that need the runs directory (`HOST_TYPES`: a store, a
site of it, a model, the output folder, ...), so every output folder lies inside the runs
directory and outside every input store; a bad field raises `InputError` naming the value and
what would be valid, and starts nothing. The job's folder and state:
`workbench_app.services.job_state`; its runner: `workbench_app.services.job_runner`; its
progress: `workbench_app.services.job_progress`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.analysis.plugins import (
    HOST_TYPES,
    JobField,
    JobKind,
    check_choice,
    get_job_kind,
    job_kinds,
)
from workbench.errors import InputError, closest
from workbench_app.services.job_kinds import (
    BATCH_JOB,
    CAPTURE_JOB,
    DEVICES,
    EXAMPLE_SPEC,
    STORE_DTYPES,
    FieldOptions,
    FormLayout,
    RunsView,
    Widget,
    batch_specs,
    capture_models,
    default_folder,
    field_options,
    field_widget,
    folder_placeholder,
    form_fields,
    form_layout,
    one_of_start,
)
from workbench_app.services.job_progress import batch_progress, capture_progress
from workbench_app.services.job_state import (
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
from workbench_app.services.runsdir import inside_runs, runs_root, stores_by_path

_SITES = re.compile(r"^[A-Za-z0-9_*][A-Za-z0-9_.*]*$")

__all__ = [
    "BATCH_JOB",
    "CAPTURE_JOB",
    "DEVICES",
    "EXAMPLE_SPEC",
    "JOBS_DIR",
    "MAX_JOBS_ENV",
    "STORE_DTYPES",
    "FieldOptions",
    "FormLayout",
    "Job",
    "RunsView",
    "Widget",
    "batch_progress",
    "batch_specs",
    "cancel_job",
    "capture_models",
    "capture_progress",
    "default_folder",
    "delete_finished_jobs",
    "delete_job",
    "elapsed_text",
    "field_options",
    "field_widget",
    "folder_placeholder",
    "form_fields",
    "form_layout",
    "job_kinds",
    "job_table",
    "limit_text",
    "list_jobs",
    "log_tail",
    "max_jobs",
    "one_of_start",
    "output_target",
    "read_job",
    "start_batch",
    "start_capture",
    "start_job",
    "wait_job",
]


def start_job(kind: str, *, root: Path | None = None, **fields: Any) -> Job:
    """Start a job of the declared kind `kind` (`job_kinds()`) with `fields` (the others take
    their declared defaults; an output folder left out, its template). Returns the new job."""
    declared = get_job_kind(kind)
    if declared.name == BATCH_JOB.name:
        return start_batch(root=root, **fields)
    return _start(declared, fields, root)


def start_capture(*, root: Path | None = None, **fields: Any) -> Job:
    """Start `workbench capture` (`CAPTURE_JOB`'s fields): `model` a zoo name (built on
    demand), optionally `@STEP`, `minilm`, or a Hugging Face folder under RUNS/models/ (its path
    relative to the runs directory); the store goes to RUNS/`out`."""
    return _start(CAPTURE_JOB, fields, root)


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
    given = {"spec": spec, "spec_text": spec_text, "out": out, "workers": workers}
    values = BATCH_JOB.validate(given)
    job_id = new_id(BATCH_JOB.name)
    folder = root / JOBS_DIR / job_id
    files: dict[str, str] = {}
    if spec is not None:
        path = _spec_file(spec, root)
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
    resolved = {**values, "spec": path, "out": out_dir}
    commands = [[*_workbench(), *argv] for argv in BATCH_JOB.commands(resolved)]
    fields = {"spec": spec or "(pasted)", "name": parsed.name, "workers": workers}
    title = BATCH_JOB.title.format(name=parsed.name)
    return launch(root, job_id, BATCH_JOB.name, title, commands, out_dir, fields, files)


def _start(kind: JobKind, given: Mapping[str, Any], root: Path | None) -> Job:
    """Validate `given` against `kind`, resolve its host-typed fields against the runs
    directory, build its command lines and launch it."""
    root = (root or runs_root()).resolve()
    values = kind.validate(given)
    out = kind.out_field
    if out.name not in given and values[out.name] is not None:
        values[out.name] = default_folder(kind, values)
    host = _Host(root)
    shown: dict[str, Any] = {}
    resolved: dict[str, Any] = {}
    for f in kind.fields:
        shown[f.name], resolved[f.name] = host.resolve(f, values[f.name], values)
    out_dir = resolved[out.name]
    for f in kind.fields:
        if f.type == "store" and out_dir.is_relative_to(resolved[f.name]):
            raise InputError(
                f"{out.name} {values[out.name]!r} lies inside the store {values[f.name]!r}; "
                "pick a folder beside it"
            )
    commands = [[*_workbench(), *argv] for argv in kind.commands(resolved)]
    title = kind.title.format(**shown)
    return launch(root, new_id(kind.name), kind.name, title, commands, out_dir, shown)


class _Host:
    """Resolves the host-typed fields (`plugins.HOST_TYPES`) of one job against the runs
    directory `root`: (value as recorded, value the command gets)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stores: dict[str, dict[str, Any]] | None = None

    @property
    def stores(self) -> dict[str, dict[str, Any]]:
        if self._stores is None:
            self._stores = stores_by_path(self.root)
        return self._stores

    def resolve(self, f: JobField, value: Any, values: Mapping[str, Any]) -> tuple[Any, Any]:
        from workbench.data import dataset_names
        from workbench.sites.positions import parse_positions

        if value is None or f.type not in HOST_TYPES:
            return value, value
        if f.type == "model":
            return value, _capture_model(str(value), self.root)
        if f.type == "dataset":
            return check_choice(f.name, value, dataset_names()), value
        if f.type == "sites":
            joined = ",".join(_sites(value))
            return joined, joined
        if f.type == "positions":
            parse_positions(value)
            return value, value
        if f.type == "store":
            store = check_choice(f.name, value, list(self.stores))
            return store, self.root / store
        if f.type == "site":
            store = self.stores.get(str(values[f.follows]), {"sites": []})
            return check_choice(f.name, value, store["sites"]), value
        if f.type == "spec":
            return value, _spec_file(str(value), self.root)
        return value, _out(str(value), self.root)  # folder


def output_target(job: Job, root: Path | None = None) -> tuple[str, dict[str, str]] | None:
    """(page, URL parameters) that open a done job's output, as its kind declares; None while
    it is not done, if its output is gone, or if its kind is no longer installed."""
    kind = job_kinds().get(job.kind)
    if kind is None or job.state != "done":
        return None
    value = f"{job.out}/{kind.output_path}" if kind.output_path else job.out
    path = inside_runs(value, (root or runs_root()).resolve())
    if path is None or not path.exists():
        return None
    return kind.output_page, {kind.output_param: value}


def limit_text() -> str:
    """A sentence on how many jobs run at once, or what is wrong with the limit's setting."""
    try:
        n = max_jobs()
    except InputError as exc:
        return f"**{exc}**: no job can start until it is fixed"
    return (
        f"At most {n} job{'s' if n > 1 else ''} run{'' if n > 1 else 's'} at once "
        f"(`${MAX_JOBS_ENV}` of the app, default 1); the others wait in a queue and start "
        "in turn, first in, first out."
    )


def job_table(jobs: list[Job]) -> pd.DataFrame:
    """One row per job: id, title, status, progress (fraction or None), elapsed, output."""
    return pd.DataFrame(
        {"job": job.id, "what": job.title, "status": job.label, "progress": job.progress,
         "elapsed": elapsed_text(job), "output": job.out}
        for job in jobs
    )  # fmt: skip


def duration(seconds: float) -> str:
    """`seconds` as "42 s", "3 min 5 s" or "2 h 10 min"."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def elapsed_text(job: Job) -> str:
    """Its commands' run time; the wait so far while it is queued; "-" if it never ran."""
    if job.started is None:
        return f"waiting {duration(job.waited_s())}" if job.active else "-"
    return duration(job.elapsed_s())


def _workbench() -> list[str]:
    return [sys.executable, "-m", "workbench"]


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
    """The `--model` value of a valid `model` (see `start_capture`)."""
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


def _spec_file(spec: str, root: Path) -> Path:
    """RUNS/`spec`, a .yaml file inside the runs directory."""
    path = inside_runs(spec, root)
    if path is None or path.suffix not in (".yaml", ".yml"):
        raise InputError(
            f"batch spec {spec!r} must be a .yaml file inside the runs directory {root}"
        )
    return path


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
