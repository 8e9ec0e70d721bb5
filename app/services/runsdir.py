"""The runs directory: where stores and results live, and the web app's only door to the disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUNS_ENV = "WORKBENCH_RUNS_DIR"


def runs_root() -> Path:
    """The runs directory the app was started on (`workbench app --runs DIR`)."""
    return Path(os.environ.get(RUNS_ENV, "runs")).resolve()


def inside_runs(relative: str, root: Path | None = None) -> Path | None:
    """`root / relative` if it resolves inside `root` (no `..`, no absolute paths, no symlink
    escapes), else None."""
    root = (root or runs_root()).resolve()
    if not relative or Path(relative).is_absolute():
        return None
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        return None
    return candidate


def stores_by_path(root: Path, complete_only: bool = True) -> dict[str, dict[str, Any]]:
    """The stores under `root` (`workbench.store.list_stores` entries), keyed by their path
    relative to `root` (what the app's `store` URL parameter holds); only complete ones unless
    `complete_only` is False."""
    from workbench.store import list_stores

    root = root.resolve()
    return {
        str(Path(entry["path"]).resolve().relative_to(root)): entry
        for entry in list_stores(root)
        if entry["complete"] or not complete_only
    }


def saved_vectors(root: Path, limit: int = 200) -> dict[str, Path]:
    """Steering vectors saved under `root` (`workbench steer extract`, the Upload page): a
    `.safetensors` beside a `.json` sidecar that names its `method`, keyed by path relative to
    `root`. Only the first `limit` `.safetensors` files (in path order) are looked at, so a runs
    directory full of SAEs does not slow the page down."""
    root = root.resolve()
    found = {}
    for path in sorted(root.glob("**/*.safetensors"))[:limit]:
        meta = path.with_suffix(".json")
        relative = str(path.relative_to(root))
        if (
            meta.is_file()
            and inside_runs(relative, root)
            and "method" in json.loads(meta.read_text())
        ):
            found[relative] = path
    return found


#: the store settings that fix its rows: stores of one model that agree on these and on their
#: sites hold the same rows, so they can be compared checkpoint to checkpoint
SAME_ROWS = ("dataset", "n_examples", "max_length", "positions")


def _step(relative: str, spec: dict[str, Any]) -> int | None:
    """A store's checkpoint step: its spec's `checkpoint_step`, else N of a `step<N>` folder."""
    step = spec.get("checkpoint_step")
    if step is not None:
        return int(step)
    name = Path(relative).name
    return int(name[4:]) if name.startswith("step") and name[4:].isdigit() else None


def checkpoint_series(stores: dict[str, dict[str, Any]]) -> dict[str, list[tuple[int, str]]]:
    """The checkpoint series among `stores` (`stores_by_path` entries): stores of one model at
    two or more training steps that hold the same rows and sites (equal `SAME_ROWS` settings), so
    curves over training and checkpoint-to-checkpoint comparisons both mean something.

    Returns name -> [(step, relative path)] in step order, one store per step (the first path
    when two hold the same step). A series is named by its stores' common folder (what
    `capture_checkpoints` and `capture_series` write: `DIR/step<N>`), with "(MODEL on DATASET)"
    added when that folder holds more than one series (a batch's shared store folder)."""
    groups: dict[tuple, dict[int, str]] = {}
    for relative in sorted(stores):
        entry = stores[relative]
        spec = entry.get("spec") or {}
        step = _step(relative, spec)
        if step is None:
            continue
        model = str(spec.get("model", "")).partition("@")[0]
        key = (model, *(str(spec.get(k)) for k in SAME_ROWS), tuple(entry.get("sites") or ()))
        groups.setdefault(key, {}).setdefault(step, relative)
    found = {key: sorted(steps.items()) for key, steps in groups.items() if len(steps) >= 2}
    folders = {key: os.path.commonpath([p for _, p in series]) for key, series in found.items()}
    shared = [folders[k] for k in found]
    named: dict[str, list[tuple[int, str]]] = {}
    for key, series in found.items():
        name = folders[key] or "."
        if shared.count(folders[key]) > 1:
            name += f" ({key[0]} on {key[1]}, {key[2]} examples, {len(key[-1])} sites)"
        while name in named:  # the same model and dataset, other settings: still one name each
            name += "'"
        named[name] = series
    return named
