"""What a page shows, picked in the URL: a store, or one of the things a page lists (results,
reports, batches), for the web app's pages (imported by `app/`, never by the library).

Every page that reads the runs directory opens the same way: an empty runs directory says the
one command that fills it, and stops; then list what it can show; with nothing, say how to make
it and stop; else a picker whose choice lives in the URL (without one, the richest store),
resolved inside the runs directory (the app's only door to the disk):

    stop_if_empty(root)                               # nothing at all: `workbench demo ...`
    stores = complete_stores(root)                    # none: an info naming the CLI, and stop
    store = pick_store(root, stores, page=PAGE)       # ?store=stores/toy-lm, else the richest
    store.name, store.path, store.mtime, store.sites, store.spec

    found = require(list_results(root), f"No results under `{root}` yet. Run ...")
    choice = url_selectbox("Result", found, "result", page=PAGE)
    folder = inside_or_stop(choice, root, "result")
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from workbench_app.lib.state import Fallback, Refusal, url_selectbox
from workbench_app.services.runsdir import (
    fill_command,
    inside_runs,
    is_empty,
    richest_first,
    stores_by_path,
)

S = TypeVar("S", bound=Sized)

NO_STORES = "No complete stores under `{root}` yet. Run `workbench demo` or `workbench capture`."
EMPTY = (
    "**The runs directory `{root}` is empty.** One command fills it with something for every "
    "page: it trains the small zoo models, captures their layers into stores and runs every "
    "analysis (about ten minutes on 2 CPU cores the first time; offline). Run it in a terminal, "
    "then reload this page:\n\n```bash\n{command}\n```"
)


def stop_if_empty(root: Path, *, stop: bool = True) -> bool:
    """Whether the runs directory `root` is empty (`is_empty`); when it is, an info that says so
    with the one command that fills it (`fill_command`), and the page stops there unless `stop`
    is False (a page that has something to offer without it: forms, zoo models)."""
    if not is_empty(root):
        return False
    st.info(EMPTY.format(root=root, command=fill_command(root)))
    if stop:
        st.stop()
    return True


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


def richest_model(root: Path, models: Sequence[str]) -> str:
    """The one of `models` (model names: zoo names, `minilm`) that the richest store holding
    one of them captured (`richest_first`; a store's spec names `MODEL@STEP` or `MODEL`), else
    the first of `models`: a page of models opens on the model the rest of the app shows."""
    stores = stores_by_path(root)
    for name in richest_first(root, stores):
        model = str((stores[name].get("spec") or {}).get("model", "")).partition("@")[0]
        if model in models:
            return model
    return models[0]


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
    URL parameter `key`, resolved inside `root` (else an error, and the page stops). Without a
    valid choice in the URL: `default` (as for `url_selectbox`), else the richest store
    (`richest_first`, ranked only then). `container` and `refuse` as for `url_selectbox`."""

    def richest(_wanted: str | None) -> str:
        return richest_first(root, stores)[0]

    name = url_selectbox(
        label,
        sorted(stores),
        key,
        page=page,
        default=richest if default is None else default,
        container=container,
        refuse=refuse,
    )
    return PickedStore(name, inside_or_stop(name, root), stores[name])
