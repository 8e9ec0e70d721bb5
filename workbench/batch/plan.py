"""A batch spec expanded into captures and cells, each keyed by a content hash of its inputs.

A capture is one (model checkpoint, dataset, sites) store; its key hashes the checkpoint's weight
fingerprint, the dataset settings and the concrete site names. A cell is one analysis of one site
(or one pair) of one capture; its key hashes the capture key(s), the site(s), the label and every
setting of the analysis, defaults included. Equal inputs give equal keys, so a rerun finds its
finished cells; changing anything that could change a number gives a new key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from workbench.batch.checkpoints import Checkpoint, load_checkpoint, resolve_checkpoints
from workbench.batch.spec import AnalysisEntry, BatchSpec, DatasetEntry, Resources, entry_names
from workbench.errors import WorkbenchError

KEY_VERSION = 1


def content_key(payload: Any) -> str:
    """16 hex digits of sha256 over canonical JSON of `payload`."""
    text = json.dumps({"v": KEY_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Capture:
    """One model checkpoint x dataset, captured once into the store `key` for every cell."""

    key: str
    checkpoint: Checkpoint
    dataset: DatasetEntry
    sites: tuple[str, ...]
    resources: Resources


@dataclass(frozen=True)
class Cell:
    """One analysis run. `stage` is "acts" (reads stores) or "trajectory" (reads the results of
    `upstream` cells over checkpoints)."""

    key: str
    analysis: str
    entry: str  # the spec entry's name (`entry_names`): `probe`, or `probe#2` for a second one
    params: dict[str, Any]
    model: str
    step: int | None
    dataset: str
    site: str
    capture: str | None = None
    site_b: str | None = None
    step_b: int | None = None
    capture_b: str | None = None
    label: str | None = None
    stage: str = "acts"
    upstream: tuple[str, ...] = ()
    metric: str | None = None
    resources: Resources = Resources()

    def columns(self) -> dict[str, Any]:
        """The cell's identity as result columns."""
        return {
            "cell": self.key,
            "entry": self.entry,
            "model": self.model,
            "step": self.step,
            "dataset": self.dataset,
            "site": self.site,
            "site_b": self.site_b,
            "step_b": self.step_b,
            "label": self.label,
        }


@dataclass
class Plan:
    """A spec expanded into its captures and cells, with the work `estimate`."""

    spec: BatchSpec
    out: str
    stores: str
    captures: list[Capture] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    estimate: dict[str, Any] = field(default_factory=dict)

    def capture(self, key: str) -> Capture:
        return next(c for c in self.captures if c.key == key)


def make_plan(spec: BatchSpec, estimate: bool = True) -> Plan:
    """Expand `spec`: resolve checkpoints (building zoo models if needed), expand site patterns
    on each model, and key every capture and cell. `estimate` adds the work estimate (one extra
    single-example forward per model to learn site widths, and tokenising the datasets)."""
    from workbench.analysis.registry import get_analysis

    out = spec.out.rstrip("/")
    plan = Plan(spec=spec, out=out, stores=spec.stores or f"{out}/stores")
    for m, entry in enumerate(spec.models):
        try:
            checkpoints = resolve_checkpoints(entry.model, entry.steps, spec.zoo_root)
            handle = load_checkpoint(checkpoints[-1], spec.zoo_root, "cpu", "float32")
        except WorkbenchError as exc:
            raise type(exc)(f"{spec.where(f'models[{m}]')}: {exc}") from None
        field = f"models[{m}].sites" if entry.sites else "sites"
        sites = _expand(
            handle, entry.sites or spec.sites, f"{spec.where(field)}: model {entry.model!r}"
        )
        extra = _fixed_pair_sites(spec, handle, entry.model)
        capture_sites = tuple(sites + [s for s in extra if s not in sites])
        for dataset in spec.datasets:
            captures = [
                Capture(
                    key=content_key(
                        {
                            "model": c.label,
                            "fingerprint": c.fingerprint,
                            "dataset": dataclasses.asdict(dataset),
                            "sites": capture_sites,
                        }
                    ),
                    checkpoint=c,
                    dataset=dataset,
                    sites=capture_sites,
                    resources=spec.resources,
                )
                for c in checkpoints
            ]
            plan.captures.extend(captures)
            names = entry_names(spec.analyses)
            group: list[Cell] = []
            for capture in captures:
                for name, analysis in zip(names, spec.analyses, strict=True):
                    if analysis.over_steps is None:
                        group.extend(
                            _cells(capture, captures[-1], sites, analysis, name, get_analysis)
                        )
            for name, analysis in zip(names, spec.analyses, strict=True):
                if analysis.over_steps is not None:
                    group.extend(_trajectory_cells(group, sites, analysis, name, get_analysis))
            plan.cells.extend(group)
        if estimate:
            plan.estimate.setdefault("models", []).append(
                _estimate(handle, capture_sites, spec.datasets, len(checkpoints))
            )
    if estimate:
        per_model = plan.estimate.pop("models")
        plan.estimate = {
            "captures": len(plan.captures),
            "cells": len(plan.cells),
            "forward_examples": sum(m["forward_examples"] for m in per_model),
            "forward_batches": sum(m["forward_batches"] for m in per_model),
            "store_bytes": sum(m["store_bytes"] for m in per_model),
        }
    return plan


def _expand(handle: Any, patterns: tuple[str, ...], where: str) -> list[str]:
    from workbench.sites.names import expand_sites

    try:
        return expand_sites(handle.sites(), list(patterns))
    except WorkbenchError as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _fixed_pair_sites(spec: BatchSpec, handle: Any, model: str) -> list[str]:
    """Sites named by `against: SITE` (captured too, so the pair can be read)."""
    from workbench.batch.spec import AGAINST

    found: list[str] = []
    for i, a in enumerate(spec.analyses):
        if a.against and a.against not in AGAINST:
            where = f"{spec.where(f'analyses[{i}].against')}: model {model!r}"
            found.extend(s for s in _expand(handle, (a.against,), where) if s not in found)
    return found


def _cells(
    capture: Capture,
    final: Capture,
    sites: list[str],
    entry: AnalysisEntry,
    name: str,
    get_analysis,
) -> list[Cell]:
    from workbench.batch.spec import AGAINST

    analysis = get_analysis(entry.analysis)
    params = dataclasses.asdict(
        analysis.make_params({k: _text(v) for k, v in entry.params.items()})
    )
    pairs: list[tuple[str, str | None, str | None]] = []
    for i, site in enumerate(sites):
        if entry.against is None:
            pairs.append((site, None, None))
        elif entry.against == "next-site":
            if i + 1 < len(sites):
                pairs.append((site, sites[i + 1], capture.key))
        elif entry.against == "final-checkpoint":
            pairs.append((site, site, final.key))
        elif entry.against not in AGAINST:
            pairs.append((site, entry.against, capture.key))
    cells = []
    for site, site_b, capture_b in pairs:
        identity = {
            "capture": capture.key,
            "site": site,
            "capture_b": capture_b,
            "site_b": site_b,
            "analysis": entry.analysis,
            "params": params,
            "label": entry.label,
        }
        cells.append(
            Cell(
                key=content_key(identity),
                analysis=entry.analysis,
                entry=name,
                params=params,
                model=capture.checkpoint.model,
                step=capture.checkpoint.step,
                dataset=capture.dataset.dataset,
                site=site,
                capture=capture.key,
                site_b=site_b,
                step_b=final.checkpoint.step if entry.against == "final-checkpoint" else None,
                capture_b=capture_b,
                label=entry.label,
                resources=entry.resources,
            )
        )
    return cells


def _trajectory_cells(
    cells: list[Cell], sites: list[str], entry: AnalysisEntry, name: str, get_analysis
) -> list[Cell]:
    """One cell per site: `entry` fitted to the upstream entry's metric over the steps of one
    (model, dataset) group of `cells`."""
    assert entry.over_steps is not None
    analysis = get_analysis(entry.analysis)
    params = dataclasses.asdict(
        analysis.make_params({k: _text(v) for k, v in entry.params.items()})
    )
    upstream_name, metric = entry.over_steps["analysis"], entry.over_steps["metric"]
    out = []
    for site in sites:
        matching = [c for c in cells if c.entry == upstream_name and c.site == site]
        if not matching:
            continue
        upstream = tuple(c.key for c in matching)
        identity = {
            "upstream": upstream,
            "metric": metric,
            "analysis": entry.analysis,
            "params": params,
        }
        out.append(
            Cell(
                key=content_key(identity),
                analysis=entry.analysis,
                entry=name,
                params=params,
                model=matching[0].model,
                step=None,
                dataset=matching[0].dataset,
                site=site,
                stage="trajectory",
                upstream=upstream,
                metric=metric,
                resources=entry.resources,
            )
        )
    return out


def _text(value: Any) -> str:
    from workbench.batch.spec import _setting_text

    return _setting_text(value)


def _estimate(
    handle: Any, sites: tuple[str, ...], datasets: list[DatasetEntry], n_checkpoints: int
) -> dict[str, int]:
    """Forward examples and batches, and stored bytes, for one model's checkpoints."""
    from workbench.data import load_dataset
    from workbench.hooks.capture import capture
    from workbench.store.capture import _model_inputs

    examples_total = batches = stored = 0
    for dataset in datasets:
        examples = load_dataset(dataset.dataset, dataset.n_examples)
        probe = capture(
            handle,
            list(sites),
            _model_inputs(handle, examples[:1]),
            positions="last" if handle.is_language_model else None,
            max_length=dataset.max_length,
        )
        width = sum(int(probe[s][0].numel()) for s in sites)
        rows = _rows(handle, examples, dataset)
        itemsize = 4 if dataset.store_dtype == "float32" else 2
        examples_total += len(examples) * n_checkpoints
        batches += -(-len(examples) // dataset.batch_size) * n_checkpoints
        stored += rows * width * itemsize * n_checkpoints
    return {"forward_examples": examples_total, "forward_batches": batches, "store_bytes": stored}


def _rows(handle: Any, examples: list, dataset: DatasetEntry) -> int:
    """Rows a capture stores: one per example, or one per kept token for `positions: all`."""
    if not handle.is_language_model or str(dataset.positions) != "all":
        return len(examples)
    tokens = 0
    for example in examples:
        ids = handle.tokenizer(example.text, truncation=True, max_length=dataset.max_length)
        tokens += len(ids["input_ids"])
    return tokens
