"""What a page shows, picked in the URL: a store, or one of the things a page lists (results,
reports, batches), for the web app's pages (imported by `app/`, never by the library).

Every page that reads the runs directory opens the same way: list what it can show; with
nothing, say how to make it and stop; else a picker whose choice lives in the URL, resolved
inside the runs directory (the app's only door to the disk):

    stores = complete_stores(root)                    # none: an info naming the CLI, and stop
    store = pick_store(root, stores, page=PAGE)       # ?store=stores/toy-lm
    store.name, store.path, store.mtime, store.sites, store.spec

    found = require(list_results(root), f"No results under `{root}` yet. Run ...")
    choice = url_selectbox("Result", found, "result", page=PAGE)
    folder = inside_or_stop(choice, root, "result")
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from workbench_app.lib.state import Fallback, Refusal, url_selectbox
from workbench_app.services.runsdir import inside_runs, stores_by_path

S = TypeVar("S", bound=Sized)

NO_STORES = "No complete stores under `{root}` yet. Run `workbench demo` or `workbench capture`."


def require(options: S, message: str) -> S:
    """`options`; when there are none, `message` (how to make some) as an info, and the page
    stops there."""
    if not len(options):
        st.info(message)
        st.stop()
    return options


def inside_or_stop(relative: str, root: Path, what: str = "store") -> Path:
    """`root / relative` resolved inside the runs directory `root`; else an error ("That
    `what` is outside the runs directory.") and the page stops."""
    path = inside_runs(relative, root)
    if path is None:
        st.error(f"That {what} is outside the runs directory.")
        st.stop()
    return path


def complete_stores(root: Path) -> dict[str, dict[str, Any]]:
    """The complete stores under `root`, keyed by their path relative to it
    (`stores_by_path`); with none, an info that says how to make one, and the page stops."""
    return require(stores_by_path(root), NO_STORES.format(root=root))


@dataclass(frozen=True)
class PickedStore:
    """A store a page shows: `name` (its path relative to the runs directory, the URL's value),
    `path` (resolved, inside the runs directory) and `entry` (its `list_stores` entry)."""

    name: str
    path: Path
    entry: dict[str, Any]

    @property
    def sites(self) -> list[str]:
        return list(self.entry["sites"])

    @property
    def spec(self) -> dict[str, Any]:
        return self.entry.get("spec") or {}

    @cached_property
    def mtime(self) -> float:
        """Its manifest's modification time: keys cached reads, so a re-captured store is
        read again."""
        return (self.path / "manifest.json").stat().st_mtime


def pick_store(
    root: Path,
    stores: dict[str, dict[str, Any]],
    *,
    page: str,
    label: str = "Store",
    key: str = "store",
    default: Fallback[str] | None = None,
    container: Any = None,
    refuse: Refusal | None = None,
) -> PickedStore:
    """A selectbox over `stores` (`complete_stores`' keys, in path order) whose choice lives in
    URL parameter `key` (default the first store; `default`, `container` and `refuse` as for
    `url_selectbox`), resolved inside `root` (else an error, and the page stops)."""
    name = url_selectbox(
        label, sorted(stores), key, page=page, default=default, container=container, refuse=refuse
    )
    return PickedStore(name, inside_or_stop(name, root), stores[name])
