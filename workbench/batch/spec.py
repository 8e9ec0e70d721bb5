"""Batch specs: a YAML file -> a validated `BatchSpec`; every error names the line and field.

name: toy-lm-dynamics
out: runs/batch/toy-lm            # results; a local path or an fsspec URL (s3://...)
models:
  - model: toy-lm                 # zoo name, HF folder or hub name, or a checkpoint series
    steps: [0, 64, 256, last]     # series only: all (default), last, a list, or {every: K}
datasets:
  - dataset: text
    n_examples: 128
    max_length: 64
sites: ["blocks.*.hook_resid_post"]
analyses:
  - analysis: twonn
    params: {max_samples: 2000}
  - analysis: probe
    label: topic                  # label-aware analyses name a store label
    label_level: token            # token | example (probe: also last); needed when the store
                                  # has the name at both levels (grammar-lm's topic)
  - analysis: svcca
    against: final-checkpoint     # comparisons: next-site, final-checkpoint, or a site
  - analysis: massive-fit
    over_steps: {analysis: massive, metric: top1_ratio}   # a trajectory over checkpoints
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import InputError

AGAINST = ("next-site", "final-checkpoint")
#: inputs a batch cell can supply; an analysis needing another input must get it from a setting
SUPPLIED = ("acts", "acts_b", "labels")


class SpecError(InputError):
    """A spec that cannot run; the message starts with `FILE:LINE: field:`."""


@dataclass(frozen=True)
class Resources:
    """What one task asks of the executor (Ray schedules on these; local runs one per worker)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float | None = None


@dataclass(frozen=True)
class ModelEntry:
    model: str
    steps: Any = "all"  # "all" | "last" | "first" | list of ints/"last" | {"every": K}
    sites: tuple[str, ...] | None = None  # overrides the spec's sites for this model


@dataclass(frozen=True)
class DatasetEntry:
    dataset: str
    n_examples: int | None = 256
    positions: str | int = "all"
    max_length: int | None = 128
    batch_size: int = 32
    store_dtype: str = "float32"


@dataclass(frozen=True)
class AnalysisEntry:
    analysis: str
    params: dict[str, Any] = field(default_factory=dict)  # validated; as given in the YAML
    label: str | None = None
    against: str | None = None
    over_steps: dict[str, str] | None = None  # {"analysis": NAME, "metric": METRIC}
    resources: Resources = Resources()


@dataclass
class BatchSpec:
    """A validated batch spec (the YAML's fields; `lines` maps field paths to their lines)."""

    name: str
    out: str
    models: list[ModelEntry]
    datasets: list[DatasetEntry]
    sites: tuple[str, ...]
    analyses: list[AnalysisEntry]
    stores: str | None = None  # default OUT/stores
    device: str = "auto"
    dtype: str = "auto"
    zoo_root: str | None = None
    resources: Resources = Resources()  # of each capture task
    path: str = "<spec>"
    text: str = ""
    lines: dict[str, int] = field(default_factory=dict)  # "models[0].sites" -> its line

    def where(self, name: str) -> str:
        """`FILE:LINE: name` for errors found after parsing (e.g. a site the model lacks)."""
        return f"{self.path}:{self.lines.get(name, 1)}: {name}"


def load_spec(path: str | Path, out: str | None = None) -> BatchSpec:
    """Read and validate the YAML spec at `path`; `out` overrides its `out`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"batch spec {str(path)!r} is not a file (a YAML spec was expected)")
    return parse_spec(path.read_text(), str(path), out=out)


def parse_spec(text: str, where: str = "<spec>", out: str | None = None) -> BatchSpec:
    """Validate spec `text` (YAML); `where` names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark is not None else ""
        raise SpecError(f"{where}:{line} not valid YAML: {exc}") from None
    at = _Locator(where, node)
    if not isinstance(data, dict):
        raise at.error((), "a batch spec is a mapping with models, datasets, sites and analyses")
    _known(
        at,
        (),
        data,
        [f.name for f in dataclasses.fields(BatchSpec) if f.name not in ("path", "text")],
    )
    for key in ("models", "datasets", "sites", "analyses"):
        if key not in data:
            raise at.error((), f"missing {key!r}")
    name = str(data.get("name") or Path(where).stem)
    spec = BatchSpec(
        name=name,
        out=str(out or data.get("out") or f"runs/batch/{name}"),
        models=[_model(at, ("models", i), m) for i, m in enumerate(_list(at, data, "models"))],
        datasets=[
            _dataset(at, ("datasets", i), d) for i, d in enumerate(_list(at, data, "datasets"))
        ],
        sites=tuple(_patterns(at, ("sites",), data["sites"])),
        analyses=[
            _analysis(at, ("analyses", i), a) for i, a in enumerate(_list(at, data, "analyses"))
        ],
        stores=None if data.get("stores") is None else str(data["stores"]),
        device=str(data.get("device", "auto")),
        dtype=str(data.get("dtype", "auto")),
        zoo_root=None if data.get("zoo_root") is None else str(data["zoo_root"]),
        resources=_resources(at, ("resources",), data.get("resources")),
        path=where,
        text=text,
    )
    _check_over_steps(at, spec)
    spec.lines["sites"] = at.line(("sites",))
    for i in range(len(spec.models)):
        spec.lines[f"models[{i}]"] = at.line(("models", i))
        spec.lines[f"models[{i}].sites"] = at.line(("models", i, "sites"))
    for i in range(len(spec.analyses)):
        spec.lines[f"analyses[{i}].against"] = at.line(("analyses", i, "against"))
    return spec


class _Locator:
    """Maps a field path like ("analyses", 2, "params") to its line in the YAML."""

    def __init__(self, where: str, root: Any) -> None:
        self.where = where
        self.root = root

    def line(self, path: tuple) -> int:
        node, line = self.root, 1
        for key in path:
            if node is None:
                break
            line = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == key), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                node = node.value[key] if key < len(node.value) else None
            else:
                node = None
        if node is not None:
            line = node.start_mark.line + 1
        return line

    def error(self, path: tuple, message: str) -> SpecError:
        name = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
        return SpecError(f"{self.where}:{self.line(path)}: {name or 'spec'}: {message}")


def _known(at: _Locator, path: tuple, data: dict, valid: list[str]) -> None:
    for key in data:
        if key not in valid:
            raise at.error((*path, key), f"unknown field {key!r}; valid: {', '.join(valid)}")


def _list(at: _Locator, data: dict, key: str) -> list:
    value = data[key]
    if not isinstance(value, list) or not value:
        raise at.error((key,), "must be a non-empty list")
    return value


def _patterns(at: _Locator, path: tuple, value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
        raise at.error(
            path, "must be a site pattern or a list of them, e.g. blocks.*.hook_resid_post"
        )
    return [s.strip() for s in items]


def _entry(at: _Locator, path: tuple, value: Any, key: str, valid: list[str]) -> dict:
    """An entry given as a bare name (`- toy-lm`) or a mapping with `key`."""
    if isinstance(value, str):
        return {key: value}
    if not isinstance(value, dict) or key not in value:
        raise at.error(path, f"must be a name or a mapping with {key!r}")
    _known(at, path, value, valid)
    return value


def _model(at: _Locator, path: tuple, value: Any) -> ModelEntry:
    data = _entry(at, path, value, "model", ["model", "steps", "sites"])
    steps = data.get("steps", "all")
    ok = (
        steps in ("all", "last", "first")
        or (
            isinstance(steps, list)
            and steps
            and all(isinstance(s, int) or s in ("last", "first") for s in steps)
        )
        or (
            isinstance(steps, dict)
            and set(steps) == {"every"}
            and isinstance(steps["every"], int)
            and steps["every"] > 0
        )
    )
    if not ok:
        raise at.error(
            (*path, "steps"),
            f"{steps!r} is not a step selection; valid: all, last, first, a list of steps, {{every: K}}",
        )
    sites = data.get("sites")
    return ModelEntry(
        model=str(data["model"]),
        steps=steps,
        sites=None if sites is None else tuple(_patterns(at, (*path, "sites"), sites)),
    )


def _dataset(at: _Locator, path: tuple, value: Any) -> DatasetEntry:
    from workbench.data import dataset_names

    valid = [f.name for f in dataclasses.fields(DatasetEntry)]
    data = _entry(at, path, value, "dataset", valid)
    if data["dataset"] not in dataset_names():
        raise at.error(
            (*path, "dataset"),
            f"unknown dataset {data['dataset']!r}; valid: {', '.join(dataset_names())}",
        )
    for key in ("n_examples", "max_length", "batch_size"):
        if (
            key in data
            and data[key] is not None
            and (not isinstance(data[key], int) or data[key] <= 0)
        ):
            raise at.error((*path, key), f"must be a positive integer, got {data[key]!r}")
    if data.get("store_dtype", "float32") not in ("float32", "float16", "bfloat16"):
        raise at.error((*path, "store_dtype"), "valid: float32, float16, bfloat16")
    if "positions" in data:
        from workbench.sites.positions import parse_positions

        try:
            parse_positions(str(data["positions"]))
        except InputError as exc:
            raise at.error((*path, "positions"), str(exc)) from None
    return DatasetEntry(**data)


def _analysis(at: _Locator, path: tuple, value: Any) -> AnalysisEntry:
    from workbench.analysis.registry import analyses

    data = _entry(
        at,
        path,
        value,
        "analysis",
        ["analysis", "params", "label", "label_level", "against", "over_steps", "resources"],
    )
    registry = analyses()
    name = data["analysis"]
    if name not in registry:
        raise at.error(
            (*path, "analysis"), f"unknown analysis {name!r}; installed: {', '.join(registry)}"
        )
    analysis = registry[name]
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise at.error((*path, "params"), "must be a mapping of setting: value")
    params = _with_label_level(at, path, data, params, "labels" in analysis.inputs)
    try:
        analysis.make_params({str(k): _setting_text(v) for k, v in params.items()})
    except InputError as exc:
        bad = next((k for k in params if f"{k!r}" in str(exc) or f"{k}=" in str(exc)), None)
        raise at.error((*path, "params", bad) if bad else (*path, "params"), str(exc)) from None
    needs = [i for i in analysis.inputs if i not in SUPPLIED and i not in params]
    trajectory = "trajectory" in analysis.inputs
    if trajectory:
        over = data.get("over_steps")
        if not (isinstance(over, dict) and set(over) == {"analysis", "metric"}):
            raise at.error(
                (*path, "over_steps"),
                f"{name!r} reads a trajectory over checkpoints: give over_steps: "
                "{analysis: NAME, metric: METRIC} naming an analysis of this spec and one of its metrics",
            )
        needs = [i for i in needs if i != "trajectory"]
    elif "over_steps" in data:
        raise at.error((*path, "over_steps"), f"{name!r} reads activations, not a trajectory")
    if needs:
        raise at.error(
            (*path, "params"),
            f"{name!r} needs {', '.join(needs)}: give it as a setting under params",
        )
    if "labels" in analysis.inputs and not data.get("label"):
        raise at.error(
            path, f"{name!r} needs labels: add label: NAME (a row or example label of the dataset)"
        )
    if "labels" not in analysis.inputs and data.get("label"):
        raise at.error((*path, "label"), f"{name!r} does not read labels")
    against = data.get("against")
    if "acts_b" in analysis.inputs and not against:
        raise at.error(
            path,
            f"{name!r} compares two representations: add against: {' | '.join(AGAINST)} | SITE",
        )
    if "acts_b" not in analysis.inputs and against:
        raise at.error((*path, "against"), f"{name!r} reads one representation, not a pair")
    return AnalysisEntry(
        analysis=name,
        params=dict(params),
        label=None if data.get("label") is None else str(data["label"]),
        against=None if against is None else str(against),
        over_steps=data.get("over_steps"),
        resources=_resources(at, (*path, "resources"), data.get("resources")),
    )


def _with_label_level(
    at: _Locator, path: tuple, data: dict[str, Any], params: dict[str, Any], reads_labels: bool
) -> dict[str, Any]:
    """`params` with the entry's `label_level` (token | example, or what the analysis takes,
    e.g. the probe's last) as the analysis's `label_level` setting; the analysis validates the
    value and records the level that ran in its result."""
    if "label_level" not in data:
        return params
    level = data["label_level"]
    if not reads_labels:
        raise at.error((*path, "label_level"), f"{data['analysis']!r} does not read labels")
    if "label_level" in params and str(params["label_level"]) != str(level):
        raise at.error(
            (*path, "label_level"),
            f"label_level {level!r} and params.label_level {params['label_level']!r} disagree; "
            "give one",
        )
    return {**params, "label_level": level}


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _resources(at: _Locator, path: tuple, value: Any) -> Resources:
    if value is None:
        return Resources()
    if not isinstance(value, dict):
        raise at.error(path, "must be a mapping with cpus, gpus, memory_gb")
    _known(at, path, value, ["cpus", "gpus", "memory_gb"])
    for key, number in value.items():
        if not isinstance(number, (int, float)) or number < 0:
            raise at.error((*path, key), f"must be a non-negative number, got {number!r}")
    return Resources(**value)


def entry_names(analyses: list[AnalysisEntry]) -> list[str]:
    """A name per analysis entry: its analysis, or `NAME#K` (K from 1) when the spec has the
    same analysis several times (e.g. two probes with different labels). Results carry it as
    the `entry` column, and `over_steps` names its upstream by it."""
    names = [a.analysis for a in analyses]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(f"{name}#{seen[name]}" if names.count(name) > 1 else name)
    return out


def _check_over_steps(at: _Locator, spec: BatchSpec) -> None:
    names = entry_names(spec.analyses)
    for i, entry in enumerate(spec.analyses):
        if entry.over_steps is None:
            continue
        upstream = entry.over_steps["analysis"]
        valid = [n for j, n in enumerate(names) if spec.analyses[j].over_steps is None]
        if upstream not in valid:
            raise at.error(
                ("analyses", i, "over_steps", "analysis"),
                f"{upstream!r} is not another analysis entry of this spec; valid: {', '.join(valid)}",
            )
