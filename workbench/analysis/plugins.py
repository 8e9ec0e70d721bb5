"""What an analysis family declares for others to use, discovered through entry points, so that
a new analysis, report format or job touches only its own family (and `pyproject.toml`):

- **headline metrics** (`workbench.headlines`): `Headline`s, the numbers a model overview shows
  per layer (from a saved result's headline) and as curves over checkpoints (from batch frames);
- **report kinds** (`workbench.reports`): `ReportKind`s, a file a family saves (`report.json`)
  and its reader, which says what one saved report holds at a site and where to open it;
- **job kinds** (`workbench.jobs`): `JobKind`s, heavy work a host (the web app) may start: an
  argument schema (`JobField`s), the `workbench ...` command lines built from validated fields,
  and the page that opens the output.

    [project.entry-points."workbench.headlines"]
    my-family = "my_family.report:HEADLINES"

Each entry point names one declaration or a list of them. A host lists them by their `order`
(ties in entry point order, a distribution's by name, then as a list gives them). The core never
names a family: it only holds the shapes and finds them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from workbench.errors import InputError, closest

HEADLINES_GROUP = "workbench.headlines"
REPORTS_GROUP = "workbench.reports"
JOBS_GROUP = "workbench.jobs"

#: a job field's types; the first group a `JobKind` checks itself, the rest its host resolves
BASIC_TYPES = ("int", "float", "bool", "str", "text", "choice")
HOST_TYPES = {
    "model": "a model a capture can load (a zoo name, NAME@STEP, minilm, a folder in the runs "
    "directory); the command gets the `--model` value",
    "dataset": "a dataset name of `workbench.data`",
    "sites": "site names or patterns, comma separated; the command gets them joined by commas",
    "positions": "a position selection (`workbench.sites.positions`)",
    "store": "a complete store, relative to the runs directory; the command gets its path",
    "site": "a site of the store named by the field's `follows`",
    "spec": "a batch spec file (.yaml) relative to the runs directory; the command gets its path",
    "folder": "the job's output folder, relative to the runs directory (one per job kind); the "
    "command gets its path",
}
PLACES = ("main", "more", "none")  # a field's place in a form: shown, under "more", API only


@dataclass(frozen=True)
class Headline:
    """One headline metric: `key` of the headline of a saved result of `analysis` (and `metric`
    `key` of its rows in a batch frame).

    Attributes:
        analysis: the analysis's registered name (`workbench.analysis.registry`).
        key: the headline key (the metric name in a batch frame).
        column: the column label of the per-layer table.
        curve: the label of its curve over checkpoints; "" draws none.
        order: where a host lists it among the others (lower first; ties by entry point name).
    """

    analysis: str
    key: str
    column: str
    curve: str = ""
    order: int = 50

    def __post_init__(self) -> None:
        for name in ("analysis", "key", "column"):
            if not getattr(self, name):
                raise InputError(f"headline {self!r}: {name} must not be empty")


@dataclass(frozen=True)
class Link:
    """A view of a host page: its URL path name (e.g. "Explore") and URL parameters."""

    page: str
    params: Mapping[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportItem:
    """One top item of a report at a site (a latent, a code): `label` is its link text, `text`
    what follows the link, `value` the number it is ranked by."""

    label: str
    text: str
    value: float
    link: Link


@dataclass(frozen=True)
class Report:
    """One saved report at a site: `folder` (relative to the runs directory), a one-line
    `summary`, where it opens, and its top `items`, best first."""

    folder: str
    summary: str
    link: Link
    items: tuple[ReportItem, ...] = ()


@dataclass(frozen=True)
class SiteQuery:
    """Which reports a host asks for: those under the runs directory `root` on `site` of the
    store named `store` (its folder name), whose model is `model` (without `@step`)."""

    root: Path
    store: str
    model: str
    site: str


@dataclass(frozen=True)
class ReportKind:
    """A kind of saved report and its reader.

    Attributes:
        name: the kind's name.
        file_name: the file a report of this kind is saved as (`report.json`); its folder is
            the report.
        title: the heading over its reports in a layer's drill-down.
        read: `(path of one such file, query) -> Report | None` (None: not at the query's site,
            or unreadable); must not raise on a malformed file.
        hint: shown where no report is found; `{store}` and `{site}` are filled in.
        order: where a host lists it among the others (lower first; ties by entry point name).
    """

    name: str
    file_name: str
    title: str
    read: Callable[[Path, SiteQuery], Report | None]
    hint: str = ""
    order: int = 50

    def __post_init__(self) -> None:
        if not self.file_name or "/" in self.file_name:
            raise InputError(f"report kind {self.name!r}: bad file name {self.file_name!r}")

    def reports_at(self, query: SiteQuery) -> list[Report]:
        """Every report of this kind under `query.root` at its site, in path order."""
        found = (self.read(path, query) for path in sorted(query.root.rglob(self.file_name)))
        return [report for report in found if report is not None]


@dataclass(frozen=True)
class JobField:
    """One field of a job kind's argument schema.

    Attributes:
        name: the keyword the job is started with (and the form's key).
        type: one of `BASIC_TYPES` (checked by `JobKind.validate`) or `HOST_TYPES` (resolved by
            the host against its runs directory before `JobKind.commands` sees them).
        default: its value when not given; None and not `optional`: required.
        choices: the valid values of a "choice" field.
        label: the form's label; help: the form's help text.
        minimum, maximum: bounds of an int or float (inclusive; `open_minimum` excludes it).
        optional: None is a valid value (a form shows it as 0 for a number with minimum >= 1).
        place: where a form shows it: "main", "more" (folded away), "none" (API only).
        follows: the field whose value sets this one's choices or default (a store's site).
        step: a float's increment in a form.
        placeholder: a form's hint for an empty text; for a "folder" field, `default` may be a
            template of other fields (`"fits/{store}-{site}"`) used when the form leaves it empty.
        empty: what a form says when a host type has nothing to choose from.
    """

    name: str
    type: str
    default: Any = None
    choices: tuple[str, ...] = ()
    label: str = ""
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    optional: bool = False
    place: str = "main"
    follows: str = ""
    step: float | None = None
    placeholder: str = ""
    empty: str = ""

    def __post_init__(self) -> None:
        types = (*BASIC_TYPES, *HOST_TYPES)
        if self.type not in types:
            raise InputError(f"field {self.name!r}: type {self.type!r}; valid: {', '.join(types)}")
        if self.place not in PLACES:
            raise InputError(f"field {self.name!r}: place {self.place!r}; valid: {PLACES}")
        if self.type == "choice" and not self.choices:
            raise InputError(f"choice field {self.name!r} declares no choices")
        if self.type in BASIC_TYPES and self.default is not None:
            self.check(self.default)

    def check(self, value: Any) -> Any:
        """`value` if valid for a basic type (a float as float); InputError naming it and what
        would be valid otherwise. Host types pass unchanged."""
        if value is None:
            if self.optional:
                return None
            raise InputError(f"{self.name} is required")
        kind = self.type
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or not self._within(value):
                raise InputError(
                    f"{self.name} must be an integer in {self._bounds()}, got {value!r}"
                )
        elif kind == "float":
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not self._within(value):
                raise InputError(f"{self.name} must be a number in {self._bounds()}, got {value!r}")
            return float(value)
        elif kind == "bool" and not isinstance(value, bool):
            raise InputError(f"{self.name} must be true or false, got {value!r}")
        elif kind == "choice":
            return check_choice(self.name, value, self.choices)
        elif kind in ("str", "text") and not isinstance(value, str):
            raise InputError(f"{self.name} must be text, got {value!r}")
        return value

    def _within(self, value: float) -> bool:
        low, high = self.minimum, self.maximum
        above = low is None or (value > low if self.open_minimum else value >= low)
        return above and (high is None or value <= high)

    def _bounds(self) -> str:
        low = "-inf" if self.minimum is None else _number(self.minimum)
        high = "inf" if self.maximum is None else _number(self.maximum)
        if self.type == "int":
            return f"{low}..{high}"
        return f"{'(' if self.open_minimum else '['}{low}, {high}]"


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its schema, its command lines, and where its output opens.

    Attributes:
        name: the kind's name (job ids and records carry it).
        label: what it does, in a sentence's words ("model fit"): a form's tab and button.
        fields: the argument schema; exactly one "folder" field, the job's output.
        commands: validated and resolved fields -> the command lines after `workbench`, one per
            step, run in order (`["fit", "train", "--store=...", ...]`); it may raise InputError
            for a combination of fields it refuses.
        title: the job's title, a template of its fields (`"fit ({arch}) on {store} {site}"`).
        output_page, output_param: the page and URL parameter that open the output folder;
            output_path: the part of the folder it opens (relative to it; "" the folder).
        summary: a sentence under its form.
        progress: `path -> (fraction, text) | None`, parsed from `progress_file` (relative to
            the output folder; "" the job's log).
        step_notes: text added to the progress while step i of `commands` runs ("" none).
        one_of: fields of which exactly one is given (a form offers a choice between them; their
            defaults are only where the form starts).
        order: where a host lists it among the others (lower first; ties by entry point name).
    """

    name: str
    label: str
    fields: tuple[JobField, ...]
    commands: Callable[[Mapping[str, Any]], list[list[str]]]
    title: str
    output_page: str
    output_param: str
    output_path: str = ""
    summary: str = ""
    progress: Callable[[Path], tuple[float, str] | None] | None = None
    progress_file: str = ""
    step_notes: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    order: int = 50

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise InputError(f"job kind {self.name!r} repeats a field name: {names}")
        folders = [f.name for f in self.fields if f.type == "folder"]
        if len(folders) != 1:
            raise InputError(f"job kind {self.name!r} needs one folder field, has {folders}")
        for name in [f.follows for f in self.fields if f.follows] + list(self.one_of):
            if name not in names:
                raise InputError(f"job kind {self.name!r} has no field {name!r}; valid: {names}")

    @property
    def out_field(self) -> JobField:
        """The field of the job's output folder."""
        return next(f for f in self.fields if f.type == "folder")

    def get_field(self, name: str) -> JobField:
        found = {f.name: f for f in self.fields}
        if name not in found:
            raise InputError(
                f"job kind {self.name!r} has no field {name!r}; valid: {', '.join(found)}"
            )
        return found[name]

    def validate(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every field's value: `given` ones checked (`JobField.check`), the others their
        defaults; unknown or missing fields raise InputError naming them."""
        for name in given:
            self.get_field(name)
        values = {
            # a `one_of` field's default is only where a form starts: not given is not chosen
            f.name: f.check(given.get(f.name, None if f.name in self.one_of else f.default))
            for f in self.fields
        }
        if self.one_of and sum(values[name] is not None for name in self.one_of) != 1:
            raise InputError(f"give exactly one of {', '.join(self.one_of)}")
        return values


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_choice(name: str, value: Any, valid: Iterable[str]) -> str:
    """`value` if it is one of `valid`; InputError naming it, the closest and all choices."""
    valid = list(valid)
    if value not in valid:
        near = closest(str(value), valid) if valid else []
        raise InputError(
            f"{name} {value!r} is not one of the valid choices"
            + (f"; closest: {', '.join(near)}" if near else "; there are none")
            + (f" (all: {', '.join(valid)})" if 0 < len(valid) <= 20 else "")
        )
    return str(value)


T = TypeVar("T", Headline, ReportKind, JobKind)


def _declared(group: str, cls: type[T]) -> list[T]:
    """The `cls` declarations named by the entry points of `group`, by their `order`, then in
    the entry points' order (by name, as installed metadata lists them), then as listed."""
    found: list[T] = []
    for ep in entry_points(group=group):
        obj = ep.load()
        for item in obj if isinstance(obj, (list, tuple)) else [obj]:
            if not isinstance(item, cls):
                raise InputError(
                    f"entry point {ep.name!r} ({ep.value}) of {group} is not a {cls.__name__}"
                )
            found.append(item)
    return sorted(found, key=lambda item: item.order)


@functools.cache
def headlines() -> tuple[Headline, ...]:
    """Every declared headline metric (entry points scanned once per process; `rescan()`)."""
    return tuple(_declared(HEADLINES_GROUP, Headline))


@functools.cache
def report_kinds() -> Mapping[str, ReportKind]:
    """Every declared report kind by name (callers must not mutate it: it is cached)."""
    return {kind.name: kind for kind in _declared(REPORTS_GROUP, ReportKind)}


@functools.cache
def job_kinds() -> Mapping[str, JobKind]:
    """Every declared job kind by name (callers must not mutate it: it is cached)."""
    return {kind.name: kind for kind in _declared(JOBS_GROUP, JobKind)}


def get_job_kind(name: str) -> JobKind:
    kinds = job_kinds()
    if name not in kinds:
        raise InputError(f"unknown job kind {name!r}; installed: {', '.join(kinds) or 'none'}")
    return kinds[name]


def rescan() -> None:
    """Forget what was discovered (after installing a plugin, or in a test)."""
    for found in (headlines, report_kinds, job_kinds):
        found.cache_clear()
