"""Declarations added as if an installed package had declared them: a fake entry point of a
`workbench.analysis.plugins` group that names an object of a module made on the fly. What a
third-party analysis family does in its `pyproject.toml`, without installing anything.

    @pytest.fixture
    def declare(monkeypatch):
        yield from declarations(monkeypatch)

    def test_x(declare):
        declare("workbench.headlines", "mine", Headline("mine", "score", "my score"))
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from workbench.analysis import plugins

MODULE = "fake_workbench_family"
Declare = Callable[[str, str, Any], None]


def _declare(monkeypatch: pytest.MonkeyPatch, group: str, name: str, obj: Any) -> None:
    module = sys.modules.get(MODULE) or types.ModuleType(MODULE)
    monkeypatch.setitem(sys.modules, MODULE, module)
    attr = f"{group}_{name}".replace(".", "_").replace("-", "_")
    monkeypatch.setattr(module, attr, obj, raising=False)
    installed = plugins.entry_points  # the real one, or one patched by an earlier call
    added = EntryPoint(name, f"{MODULE}:{attr}", group)

    def found(*, group: str) -> list[EntryPoint]:
        eps = list(installed(group=group))
        return [*eps, added] if group == added.group else eps

    monkeypatch.setattr(plugins, "entry_points", found)
    plugins.rescan()


def declarations(monkeypatch: pytest.MonkeyPatch) -> Iterator[Declare]:
    """The body of a `declare` fixture: `declare(group, name, declaration)` for the test;
    everything is forgotten after it (the patches undone, the discovery rescanned)."""
    yield lambda group, name, obj: _declare(monkeypatch, group, name, obj)
    monkeypatch.undo()
    plugins.rescan()
