"""The runs directory: where stores and results live, and the web app's only door to the disk."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

RUNS_ENV = "WORKBENCH_RUNS_DIR"


def runs_root() -> Path:
    """The runs directory the app was started on (`workbench app --runs DIR`; by default where
    `workbench demo` writes)."""
    return Path(os.environ.get(RUNS_ENV) or demo_default_out()).resolve()


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


def is_empty(root: Path) -> bool:
    """Whether the runs directory `root` holds nothing at all: it is missing, or no file lies in
    it or below (empty folders, such as the one `workbench app` makes, do not count). One file
    is enough to stop the walk, so a full runs directory answers at once."""
    return not root.is_dir() or not any(path.is_file() for path in root.rglob("*"))


@cache
def demo_default_out() -> str:
    """Where `workbench demo` writes without `--out`: its parser's default, as written there
    (relative to the working directory)."""
    from workbench.cli.main import build_parser

    return str(build_parser().parse_args(["demo"]).out)


def fill_command(root: Path) -> str:
    """The one command that fills the runs directory `root` with something for every page:
    `workbench demo --no-app`, with `--out ROOT` unless `root` is the demo's default (ROOT
    relative to the working directory when it lies inside it). `--no-app`: the app that shows
    this is already serving `root`, and the demo's own would want the same port."""
    root = root.resolve()
    command = "workbench demo --no-app"
    if root == Path(demo_default_out()).resolve():
        return command
    cwd = Path.cwd().resolve()
    shown = root.relative_to(cwd) if root.is_relative_to(cwd) else root
    return f"{command} --out {shlex.quote(str(shown))}"


def saved_analyses(root: Path) -> dict[str, set[str]]:
    """Store name -> the analyses with a saved result for it: `results/<analysis>/<name>/`
    holding a result (`result.json`) directly or one folder down (per site, per direction), as
    `workbench demo` and `workbench analyze --out RUNS/results/<analysis>/<name>` save them for
    the store `stores/<name>`."""
    found: dict[str, set[str]] = {}
    for pattern in ("*/*/result.json", "*/*/*/result.json"):
        for meta in (root / "results").glob(pattern):
            analysis, name = meta.relative_to(root / "results").parts[:2]
            found.setdefault(name, set()).add(analysis)
    return found


def richest_first(root: Path, stores: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The keys of `stores` (paths relative to the runs directory `root` -> `list_stores`
    entries, as `stores_by_path` gives them; an entry may lack `sites`), richest first: what a
    page shows when the URL names no store. Richest means, compared in this order:

    1. the most analyses with saved results for it (`saved_analyses`; only a store directly
       under `root/stores/` has them): the most pages with something to show;
    2. the most sites (the longest tables, the most layers to compare);
    3. the newest manifest (the latest capture);

    and, between stores equal on all three, path order."""
    analyses = saved_analyses(root)

    def richness(relative: str) -> tuple[int, int, float]:
        path = Path(relative)
        named = path.parent == Path("stores")
        n_analyses = len(analyses.get(path.name, ())) if named else 0
        try:
            mtime = (root / relative / "manifest.json").stat().st_mtime
        except OSError:  # gone since it was listed, or a name without a store
            mtime = 0.0
        return n_analyses, len(stores[relative].get("sites") or ()), mtime

    ranked = sorted(stores)  # path order first, so that the stable sort breaks ties by it
    return sorted(ranked, key=richness, reverse=True)


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
    added when that folder holds more than one series (a batch's shared store folder), and
    "(MODEL)" when the folder's path does not name the model."""
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
        elif key[0] and key[0].rsplit("/", 1)[-1] not in name:
            name += f" ({key[0]})"  # a batch's hashed store folders do not name their model
        while name in named:  # the same model and dataset, other settings: still one name each
            name += "'"
        named[name] = series
    return named
