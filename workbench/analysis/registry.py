"""Discovery of analyses through the `workbench.analyses` entry-point group.

An analysis module exposes an `Analysis` object (or a list of them); `pyproject.toml` names it:

    [project.entry-points."workbench.analyses"]
    activation-stats = "analyses.activation_stats.analyses:ANALYSIS"
    intrinsic-dim = "analyses.geometry.intrinsic_dim:ANALYSES"

The CLI, the batch runner and the app all find analyses here; a third party adds one the same
way. The core never imports an analysis package by name.
"""

from __future__ import annotations

import dataclasses
import functools
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


@functools.cache
def analyses() -> dict[str, Analysis]:
    """Every installed analysis by name (entry points are scanned once per process;
    `analyses.cache_clear()` rescans)."""
    found: dict[str, Analysis] = {}
    for ep in entry_points(group=GROUP):
        obj = ep.load()
        for analysis in obj if isinstance(obj, (list, tuple)) else [obj]:
            if not isinstance(analysis, Analysis):
                raise InputError(
                    f"entry point {ep.name!r} ({ep.value}) is not a workbench Analysis"
                )
            found[analysis.name] = analysis
    return dict(sorted(found.items()))  # callers must not mutate it: it is cached


def get_analysis(name: str) -> Analysis:
    """The installed analysis `name`; an unknown name is an `InputError` listing the installed
    ones."""
    available = analyses()
    if name not in available:
        raise InputError(f"unknown analysis {name!r}; installed: {', '.join(available) or 'none'}")
    return available[name]
