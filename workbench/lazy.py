"""Lazy package exports (PEP 562): a package names what it exports, and each name's module is
imported on first use. `import workbench` then costs milliseconds instead of importing torch,
so `workbench --help` and argument errors answer at once."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, where `exports` maps each exported name to the
    module that defines it (absolute, e.g. "workbench.hooks.capture"). A resolved name is cached
    in the package's namespace, so the import happens once.

    A name may be both an export and a submodule (`analyses.sae.evaluate`, the function, lives
    in `analyses.sae.evaluate`, the module). Importing the submodule makes the import system bind
    the module to that name on the package; the package keeps the function instead, as an eager
    `from .evaluate import evaluate` in its `__init__` would have left it."""
    module = sys.modules[package]
    module.__class__ = _exports_guard(package, exports)

    def __getattr__(name: str) -> Any:
        source = exports.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(module)))

    return __getattr__, __dir__


def _exports_guard(package: str, exports: Mapping[str, str]) -> type[types.ModuleType]:
    """A module class whose exported names are not overwritten by a same-named submodule."""

    class ExportingPackage(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            submodule = f"{package}.{name}"
            if (
                isinstance(value, types.ModuleType)
                and value.__name__ == submodule
                and exports.get(name) == submodule
            ):
                value = getattr(value, name)
            super().__setattr__(name, value)

    return ExportingPackage
