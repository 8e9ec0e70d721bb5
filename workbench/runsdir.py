"""The runs directory: where stores and results live, and the web app's only door to the disk."""

from __future__ import annotations

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
