"""Finding stores on disk, for listings in the app and the CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workbench.errors import StoreError
from workbench.store import manifest as M


def list_stores(root: str | os.PathLike, max_depth: int = 4) -> list[dict[str, Any]]:
    """Every store under `root` (depth <= max_depth), for listings in the app.

    Each entry: path, complete, spec, spec_hash, summary (model/checkpoint/dataset from the
    spec), n_rows, n_examples, sites, created_utc, error (None, or why the manifest is unreadable).
    """
    root = Path(root)
    found = []
    for directory, dirs, names in os.walk(root):
        depth = len(Path(directory).relative_to(root).parts)
        if M.MANIFEST_NAME in names:
            dirs[:] = []  # a store's folders hold no stores
            entry: dict[str, Any] = {"path": str(directory), "error": None}
            try:
                manifest = M.read_manifest(Path(directory))
            except StoreError as e:
                found.append({**entry, "complete": False, "error": str(e)})
                continue
            assert manifest is not None
            spec = manifest["spec"]
            found.append(
                {
                    **entry,
                    "complete": bool(manifest["complete"]),
                    "spec": spec,
                    "spec_hash": manifest["spec_hash"],
                    "summary": {
                        k: spec[k] for k in ("model", "checkpoint", "dataset") if k in spec
                    },
                    "n_rows": manifest.get("n_rows", 0),
                    "n_examples": manifest.get("n_examples", 0),
                    "sites": list(manifest["sites"]),
                    "created_utc": manifest.get("created_utc"),
                }
            )
        elif depth >= max_depth:
            dirs[:] = []
        dirs.sort()
    return sorted(found, key=lambda e: e["path"])
