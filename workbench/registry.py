"""Discovery of analyses.

Built-in analyses are the modules of the `analyses` and `probes` packages that expose an
`ANALYSIS` object (or a list `ANALYSES`); a module is found by being there, so adding an
analysis touches no shared file. A third-party package adds one through the
`workbench.analyses` entry-point group, which names an `Analysis` (or a list of them):

    [project.entry-points."workbench.analyses"]
    my-analysis = "my_package.my_module:ANALYSIS"

The CLI, the batch runner and the app all find analyses here.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from workbench.errors import InputError

GROUP = "workbench.analyses"


@dataclass(frozen=True)
class Analysis:
    """A registered analysis.

    Attributes:
        name: CLI name.
        params: frozen dataclass of settings (defaults = the documented conventions).
        run: pure function `(source, params) -> Result`; `source` is a `Source`.
        inputs: which inputs it reads: "acts", "acts_b", "labels", "weights"; an analysis whose
            `acts` is something else (a trajectory table for `massive-fit`) names that too, so
            that the demo, which runs analyses whose inputs are exactly ("acts",), skips it.
        summary: one line for `--help` and the app.
    """

    name: str
    params: type
    run: Callable[..., Any]
    inputs: tuple[str, ...] = ("acts",)
    summary: str = ""

    def make_params(self, overrides: dict[str, str]) -> Any:
        """Build the params dataclass from `key=value` strings, converting to the field types."""
        fields = {f.name: f for f in dataclasses.fields(self.params)}
        values: dict[str, Any] = {}
        for key, text in overrides.items():
            if key not in fields:
                raise InputError(
                    f"analysis {self.name!r} has no setting {key!r}; valid: {', '.join(fields)}"
                )
            default = fields[key].default
            values[key] = _convert(key, text, default)
        return self.params(**values)


def _convert(key: str, text: str, default: Any) -> Any:
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise InputError(f"setting {key}={text!r} must be true or false")
        return text.lower() in ("true", "1")
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(text)
            except ValueError:
                raise InputError(f"setting {key}={text!r} must be a {kind.__name__}") from None
    if default is None:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                continue
    return text


BUILTIN_PACKAGES = ("analyses", "probes")


def _builtin() -> list[tuple[str, Any]]:
    """(module name, ANALYSIS or ANALYSES) of every module in the built-in packages."""
    found = []
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package_name}.{info.name}")
            for attr in ("ANALYSIS", "ANALYSES"):
                if hasattr(module, attr):
                    found.append((module.__name__, getattr(module, attr)))
    return found


def analyses() -> dict[str, Analysis]:
    """Every installed analysis by name: the built-in packages, then entry points."""
    found: dict[str, Analysis] = {}
    plugins = [
        (f"entry point {ep.name!r} ({ep.value})", ep.load()) for ep in entry_points(group=GROUP)
    ]
    for origin, obj in [*_builtin(), *plugins]:
        for analysis in obj if isinstance(obj, (list, tuple)) else [obj]:
            if not isinstance(analysis, Analysis):
                raise InputError(f"{origin} does not give a workbench Analysis")
            found[analysis.name] = analysis
    return dict(sorted(found.items()))


def get_analysis(name: str) -> Analysis:
    available = analyses()
    if name not in available:
        raise InputError(f"unknown analysis {name!r}; installed: {', '.join(available) or 'none'}")
    return available[name]
