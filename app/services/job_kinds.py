"""The job kinds of the two core verbs, and what a form of any job kind needs.

`CAPTURE_JOB` (`workbench capture` of a dataset through a model: zoo, minilm, or a Hugging Face
folder under RUNS/models/, into a store under the runs directory) and `BATCH_JOB` (`workbench
batch run` of a spec file inside the runs directory, or of pasted YAML) are declared here, beside
the app's runs directory they read, and registered as entry points (`workbench.jobs`) like any
family's. `field_options`, `form_fields`, `default_folder` and `folder_placeholder` turn any
declared `JobKind`'s schema into a form and a form's widget values into the fields a job starts
with (`workbench_app.services.jobs.start_job`).
"""

from __future__ import annotations

import functools
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.analysis.export import safe_name
from workbench.analysis.plugins import JobField, JobKind
from workbench_app.services.job_progress import batch_log_progress, capture_log_progress
from workbench_app.services.job_state import JOBS_DIR
from workbench_app.services.runsdir import runs_root, stores_by_path

STORE_DTYPES = ("float32", "float16", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")
_PATH_PART = re.compile(r"^[A-Za-z0-9_.+-]+$")
EXAMPLE_SPEC = """\
name: toy-lm-anisotropy
device: cpu
models:
  - model: toy-lm
    steps: [0, last]
datasets:
  - dataset: grammar-lm
    n_examples: 64
    max_length: 32
sites: ["blocks.*.hook_resid_post"]
analyses:
  - analysis: anisotropy
"""


def _capture_commands(values: Mapping[str, Any]) -> list[list[str]]:
    argv = [
        "capture",
        f"--model={values['model']}",
        f"--sites={values['sites']}",
        f"--dataset={values['dataset']}",
        f"--out={values['out']}",
        f"--positions={values['positions']}",
        f"--batch-size={values['batch_size']}",
        f"--max-length={values['max_length']}",
        f"--store-dtype={values['store_dtype']}",
        f"--device={values['device']}",
    ]
    if values["n_examples"] is not None:
        argv.append(f"--n-examples={values['n_examples']}")
    if values["overwrite"]:
        argv.append("--overwrite")
    return [argv]


def _batch_commands(values: Mapping[str, Any]) -> list[list[str]]:
    run = ["batch", "run", str(values["spec"]), f"--out={values['out']}"]
    return [[*run, f"--workers={values['workers']}"]]


CAPTURE_JOB = JobKind(
    name="capture",
    label="capture",
    fields=(
        JobField(
            "model",
            "model",
            label="Model",
            help="zoo models, minilm, and Hugging Face folders under models/ in the runs directory",
        ),
        JobField("dataset", "dataset", label="Dataset", follows="model"),
        JobField(
            "n_examples",
            "int",
            128,
            minimum=1,
            maximum=10_000_000,
            optional=True,
            label="Examples (0: all)",
        ),
        JobField(
            "sites", "sites", label="Sites (names or patterns, comma separated)", follows="model"
        ),
        JobField(
            "out",
            "folder",
            "stores/{model}-{dataset}",
            label="Store folder (inside the runs directory)",
        ),
        JobField("positions", "positions", "all", label="Positions", place="more"),
        JobField(
            "batch_size", "int", 32, minimum=1, maximum=4096, label="Batch size", place="more"
        ),
        JobField(
            "max_length", "int", 128, minimum=1, maximum=8192, label="Max tokens", place="more"
        ),
        JobField(
            "store_dtype",
            "choice",
            "float32",
            choices=STORE_DTYPES,
            label="Stored dtype",
            place="more",
        ),
        JobField("device", "choice", "auto", choices=DEVICES, place="none"),
        JobField("overwrite", "bool", False, place="none"),
    ),
    commands=_capture_commands,
    title="capture {model} on {dataset} at {sites}",
    output_page="Explore",
    output_param="store",
    progress=capture_log_progress,
    order=10,  # first: every other job reads a store
)
BATCH_JOB = JobKind(
    name="batch",
    label="batch run",
    fields=(
        JobField(
            "spec",
            "spec",
            optional=True,
            label="A spec file in the runs directory",
            empty="No .yaml spec under the runs directory: paste one instead.",
        ),
        JobField("spec_text", "text", EXAMPLE_SPEC, optional=True, label="Paste YAML"),
        JobField(
            "out",
            "folder",
            optional=True,
            label="Results folder (inside the runs directory)",
            placeholder="batch/SPEC-NAME",
        ),
        JobField(
            "workers", "int", 1, minimum=1, maximum=os.cpu_count() or 1, label="Local workers"
        ),
    ),
    commands=_batch_commands,
    title="batch {name}",
    output_page="Batch",
    output_param="batch",
    progress=batch_log_progress,
    one_of=("spec", "spec_text"),
    order=90,  # last: it runs whole plans of captures and analyses
)


# -- what a form needs: choices, defaults, folder templates, the output's page ---------------


@dataclass(frozen=True)
class FieldOptions:
    """What a form offers for one field: `choices` (None: free input) with their `labels`
    (shown text, where it differs), and the `default` it starts with."""

    choices: list[str] | None
    default: Any
    labels: dict[str, str] = field(default_factory=dict)


class RunsView:
    """What a job form reads from the runs directory (capture models, stores, batch specs), each
    read at most once: make one per page render and pass it to every field's options."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or runs_root()).resolve()

    @functools.cached_property
    def models(self) -> dict[str, dict[str, Any]]:
        return capture_models(self.root)

    @functools.cached_property
    def stores(self) -> dict[str, dict[str, Any]]:
        return stores_by_path(self.root)

    @functools.cached_property
    def specs(self) -> list[str]:
        return batch_specs(self.root)


def field_options(
    f: JobField, values: Mapping[str, Any], root: Path | None = None, view: RunsView | None = None
) -> FieldOptions:
    """The choices and default of field `f` given the `values` of the fields drawn before it
    (those it `follows`), for the runs directory `root` (or as `view` read it)."""
    from workbench.data import dataset_names

    view = view or RunsView(root)
    followed = values.get(f.follows) if f.follows else None
    if f.type == "model":
        models = view.models
        # built ones first, toy-lm (the richest zoo model: labels, checkpoints) first of those
        names = sorted(models, key=lambda n: (not models[n]["built"], n != "toy-lm"))
        unbuilt = {n: f"{n} (not built yet: the job builds it)" for n in names}
        labels = {n: text for n, text in unbuilt.items() if not models[n]["built"]}
        return FieldOptions(names, names[0] if names else None, labels)
    if f.type in ("dataset", "sites"):
        info = view.models.get(str(followed), {}) if followed is not None else {}
        default = info.get("dataset" if f.type == "dataset" else "sites", f.default)
        return FieldOptions(dataset_names() if f.type == "dataset" else None, default)
    if f.type == "store":
        stores = list(view.stores)
        return FieldOptions(stores, stores[0] if stores else None)
    if f.type == "site":
        sites = list(view.stores.get(str(followed), {"sites": []})["sites"])
        return FieldOptions(sites, sites[-1] if sites else None)
    if f.type == "spec":
        specs = view.specs
        return FieldOptions(specs, specs[0] if specs else None)
    if f.type == "choice":
        return FieldOptions(list(f.choices), f.default)
    return FieldOptions(None, "" if f.type == "folder" else f.default)


@dataclass(frozen=True)
class Widget:
    """How a form draws one field: the Streamlit widget's name (`selectbox`, `number_input`,
    `checkbox`, `text_area`, `text_input`) and its keyword arguments (label, key, ...); `note`
    goes above it (a choice with nothing to choose from says what to do)."""

    widget: str
    args: dict[str, Any]
    note: str = ""


def field_widget(
    kind: JobKind,
    f: JobField,
    values: Mapping[str, Any],
    root: Path | None,
    page: str,
    view: RunsView | None = None,
) -> Widget:
    """The widget of field `f` of `kind` on page `page`, its choices and default following the
    `values` drawn before it. Its key is the field's (and the followed value's, so that a new
    store gets a new site widget); an optional number that 0 cannot be starts at 0 for None
    (`form_fields` reads it back)."""
    options = field_options(f, values, root, view)
    key = f"{page}-{kind.name}-{f.name}" + (f"-{values[f.follows]}" if f.follows else "")
    common = {"label": f.label or f.name, "key": key, "help": f.help or None}
    default = options.default
    if options.choices is not None:
        labels, choices = options.labels, options.choices
        return Widget(
            "selectbox",
            {
                **common,
                "options": choices,
                "index": choices.index(default) if default in choices else 0,
                "format_func": lambda choice: labels.get(choice, choice),
            },
            f.empty if not choices else "",
        )
    if f.type in ("int", "float"):
        cast = int if f.type == "int" else float
        blank = zero_is_blank(f)
        low = 0 if blank else None if f.open_minimum or f.minimum is None else f.minimum
        number = {
            "min_value": None if low is None else cast(low),
            "max_value": None if f.maximum is None else cast(f.maximum),
            "value": cast(default or 0),
            "step": f.step,
            "format": "%.1e" if f.step and f.step < 1e-2 else None,
        }
        return Widget("number_input", {**common, **number})
    if f.type == "bool":
        return Widget("checkbox", {**common, "value": bool(default)})
    if f.type == "text":
        return Widget("text_area", {**common, "value": default or "", "height": 300})
    if f.type == "folder":
        known = {g.follows: values[g.follows] for g in kind.fields if g.follows}
        hint = folder_placeholder(kind, known)
        return Widget("text_input", {**common, "value": "", "placeholder": hint})
    return Widget("text_input", {**common, "value": default or ""})


def zero_is_blank(f: JobField) -> bool:
    """True for an optional number that cannot be 0 (its minimum is 1 or more, or an excluded
    0): a form shows None as 0 and reads 0 back as None ("the verb's own default")."""
    low = f.minimum or 0
    return f.optional and f.type in ("int", "float") and (low >= 1 or (f.open_minimum and low == 0))


@dataclass(frozen=True)
class FormLayout:
    """A job kind's form: `before` it the fields others follow (their widgets rerun the page, so
    that the followers' choices follow), then one field of `one_of`, then `main` fields in
    `columns` columns and `more` folded away; fields placed "none" are not drawn."""

    before: list[JobField]
    main: list[JobField]
    more: list[JobField]
    columns: int


def form_layout(kind: JobKind) -> FormLayout:
    shown = [f for f in kind.fields if f.place != "none"]
    followed = {f.follows for f in shown if f.follows}
    rest = [f for f in shown if f.name not in followed and f.name not in kind.one_of]
    main = [f for f in rest if f.place == "main"]
    return FormLayout(
        before=[f for f in shown if f.name in followed],
        main=main,
        more=[f for f in rest if f.place == "more"],
        columns=2 if len(main) <= 4 else 3,
    )


def one_of_start(
    kind: JobKind, values: Mapping[str, Any], root: Path | None = None, view: RunsView | None = None
) -> int:
    """Which field of `kind.one_of` a form starts on: the first with something to choose from
    (a spec file, if there is one), else the last."""
    for i, name in enumerate(kind.one_of):
        if field_options(kind.get_field(name), values, root, view).choices != []:
            return i
    return len(kind.one_of) - 1


def form_fields(kind: JobKind, raw: Mapping[str, Any], chosen: str = "") -> dict[str, Any]:
    """The fields to start `kind` with from a form's widget values `raw` (field name -> value;
    `chosen`: the field of `kind.one_of` the form chose): numbers as int or float, 0 as None for
    an optional number that 0 cannot be (`zero_is_blank`), text stripped, an empty output folder as
    its template filled in (or None without one)."""
    fields: dict[str, Any] = {}
    for f in kind.fields:
        if f.name not in raw or (f.name in kind.one_of and f.name != chosen):
            continue
        value = raw[f.name]
        if f.type in ("int", "float") and value is not None:
            blank = zero_is_blank(f) and value == 0
            value = None if blank else int(value) if f.type == "int" else float(value)
        elif isinstance(value, str) and f.type != "text":
            value = value.strip()
        fields[f.name] = value
    out = kind.out_field.name
    if out in fields and not fields[out]:
        fields[out] = default_folder(kind, {**raw, **fields})
    return fields


def default_folder(kind: JobKind, values: Mapping[str, Any]) -> str | None:
    """The output folder template of `kind` (its folder field's default, e.g.
    `"sae/{store}-{site}"`) filled with `values` made path-safe (a store by its folder name);
    None without a template."""
    template = kind.out_field.default
    if not isinstance(template, str):
        return None
    return template.format(
        **{name: _slug_of(kind, name, values[name]) for name in _slots(template)}
    )


def folder_placeholder(kind: JobKind, known: Mapping[str, Any]) -> str:
    """A form's hint for the output folder: its placeholder, or its template with the fields in
    `known` filled in and the others in capitals (`"stores/toy-lm-DATASET"`)."""
    out = kind.out_field
    if out.placeholder or not isinstance(out.default, str):
        return out.placeholder
    return out.default.format(
        **{
            name: _slug_of(kind, name, known[name]) if name in known else name.upper()
            for name in _slots(out.default)
        }
    )


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


def _slots(template: str) -> list[str]:
    return [name for _text, name, _spec, _conv in string.Formatter().parse(template) if name]


def _slug_of(kind: JobKind, name: str, value: Any) -> str:
    text = Path(str(value)).name if kind.get_field(name).type == "store" else str(value)
    return safe_name(text, default=name)
