"""Declarations through entry points (`workbench.analysis.plugins`): discovery of the installed
ones and of a fake one, its order, refusal of what is not a declaration; the job schema's
validation (every error names the value and the valid choices); a report kind walks a runs
directory for its files."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from workbench.analysis import plugins
from workbench.analysis.plugins import (
    Headline,
    JobField,
    JobKind,
    Link,
    Report,
    ReportKind,
    SiteQuery,
)
from workbench.errors import InputError

MODULE = __name__


def echo(values):
    return [["echo", f"--text={values['text']}", f"--out={values['out']}"]]


ECHO = JobKind(
    "echo",
    "echo",
    (JobField("text", "str", "hi"), JobField("out", "folder", "echo/{text}")),
    echo,
    title="echo {text}",
    output_page="Explore",
    output_param="store",
    order=5,
)
EARLY = Headline("early", "x", "early x", order=1)
LATE = [Headline("late", "y", "late y", "late y (training)"), Headline("late", "z", "late z")]


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Discovery sees the installed entry points plus `added` ones (group -> [(name, attr)])."""
    added: dict[str, list[EntryPoint]] = {}
    installed = plugins.entry_points

    def found(*, group):
        return [*installed(group=group), *added.get(group, [])]

    monkeypatch.setattr(plugins, "entry_points", found)

    def add(group: str, name: str, attr: str) -> None:
        added.setdefault(group, []).append(EntryPoint(name, f"{MODULE}:{attr}", group))
        plugins.rescan()

    yield add
    monkeypatch.undo()
    plugins.rescan()


def test_installed_declarations_are_found():
    columns = [h.column for h in plugins.headlines()]
    assert columns[:5] == ["TwoNN dim", "MLE dim", "PCA PR", "anisotropy", "effective rank"]
    assert {"max |a| / median", "probe accuracy", "NC1"} <= set(columns)
    assert list(plugins.report_kinds()) == ["sae-features", "codebooks"]
    assert list(plugins.job_kinds())[:3] == ["capture", "sae", "batch"]


def test_a_fake_entry_point_adds_declarations_in_order(fake_entry_points):
    fake_entry_points("workbench.headlines", "late", "LATE")  # a list: both, in its order
    fake_entry_points("workbench.headlines", "early", "EARLY")
    fake_entry_points("workbench.jobs", "echo", "ECHO")
    found = plugins.headlines()
    assert found[0] == EARLY  # order 1 before every installed one
    assert [h.key for h in found if h.analysis == "late"] == ["y", "z"]  # order 50: last, listed
    assert list(plugins.job_kinds())[0] == "echo"
    assert plugins.get_job_kind("echo") is ECHO


def test_discovery_is_cached_until_rescan(fake_entry_points, monkeypatch):
    fake_entry_points("workbench.jobs", "echo", "ECHO")
    with pytest.raises(InputError, match="unknown job kind 'nope'; installed: echo, capture, sae"):
        plugins.get_job_kind("nope")
    monkeypatch.setattr(plugins, "entry_points", lambda *, group: [])  # uninstalled
    assert "echo" in plugins.job_kinds()  # entry points are scanned once per process
    plugins.rescan()
    assert plugins.job_kinds() == {} and plugins.headlines() == ()


def test_an_entry_point_that_is_not_a_declaration_is_refused(fake_entry_points):
    fake_entry_points("workbench.reports", "wrong", "EARLY")  # a Headline, not a ReportKind
    with pytest.raises(InputError, match="entry point 'wrong'.*is not a ReportKind"):
        plugins.report_kinds()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (JobField("n", "int", minimum=1, maximum=4096), "8", r"n must be an integer in 1\.\.4096, got '8'"),
        (JobField("n", "int", minimum=1, maximum=4096), True, "n must be an integer"),
        (JobField("n", "int", minimum=1, maximum=10_000_000), 0, r"in 1\.\.10000000, got 0"),
        (JobField("lr", "float", minimum=0.0, maximum=1.0, open_minimum=True), 0.0,
         r"lr must be a number in \(0, 1\], got 0.0"),
        (JobField("lr", "float", minimum=0.0, maximum=1.0), 1.5, r"lr must be a number in \[0, 1\]"),
        (JobField("arch", "choice", choices=("topk", "relu")), "gated",
         r"arch 'gated' is not one of the valid choices.*\(all: topk, relu\)"),
        (JobField("flag", "bool"), "yes", "flag must be true or false, got 'yes'"),
        (JobField("name", "str"), 3, "name must be text, got 3"),
        (JobField("name", "str"), None, "name is required"),
    ],
)  # fmt: skip
def test_a_bad_field_names_the_value_and_what_is_valid(field, value, message):
    with pytest.raises(InputError, match=message):
        field.check(value)


def test_good_fields_pass_and_optional_ones_take_none():
    assert JobField("lr", "float", minimum=0.0, open_minimum=True).check(1) == 1.0
    assert isinstance(JobField("lr", "float").check(1), float)
    assert JobField("d", "int", minimum=1, optional=True).check(None) is None
    assert JobField("arch", "choice", choices=("topk",)).check("topk") == "topk"
    assert JobField("store", "store").check("stores/x") == "stores/x"  # the host's to check


def test_declarations_are_checked_when_made():
    with pytest.raises(InputError, match="type 'path'; valid: int, float"):
        JobField("x", "path")
    with pytest.raises(InputError, match="declares no choices"):
        JobField("x", "choice")
    with pytest.raises(InputError, match="x must be an integer in 1..2, got 5"):
        JobField("x", "int", 5, minimum=1, maximum=2)
    with pytest.raises(InputError, match="place 'side'"):
        JobField("x", "str", place="side")
    folder = JobField("out", "folder")
    with pytest.raises(InputError, match="needs one folder field, has \\[\\]"):
        JobKind("k", "k", (JobField("x", "str"),), echo, "t", "P", "p")
    with pytest.raises(InputError, match="repeats a field name"):
        JobKind("k", "k", (folder, folder), echo, "t", "P", "p")
    with pytest.raises(InputError, match="has no field 'store'"):
        JobKind("k", "k", (folder, JobField("site", "site", follows="store")), echo, "t", "P", "p")
    with pytest.raises(InputError, match="must not be empty"):
        Headline("twonn", "", "TwoNN dim")


def test_validate_fills_defaults_and_refuses_unknown_fields():
    assert ECHO.validate({}) == {"text": "hi", "out": "echo/{text}"}
    assert ECHO.validate({"text": "yo"})["text"] == "yo"
    with pytest.raises(InputError, match="job kind 'echo' has no field 'txt'; valid: text, out"):
        ECHO.validate({"txt": "yo"})
    either = JobKind(
        "either",
        "either",
        (JobField("a", "str", "x", optional=True), JobField("b", "text", "y", optional=True),
         JobField("out", "folder")),
        echo, "t", "P", "p", one_of=("a", "b"),
    )  # fmt: skip
    assert either.validate({"a": "1", "out": "o"})["b"] is None  # a default is not a choice
    for given in ({"out": "o"}, {"a": "1", "b": "2", "out": "o"}):
        with pytest.raises(InputError, match="give exactly one of a, b"):
            either.validate(given)


def test_a_report_kind_reads_every_file_of_its_name(tmp_path):
    for folder, site in (("x/a", "s1"), ("y/b/c", "s1"), ("z", "s2")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "notes.json").write_text(json.dumps({"site": site}))
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "notes.json").write_text("{not json")

    def read(path: Path, query: SiteQuery) -> Report | None:
        try:
            site = json.loads(path.read_text())["site"]
        except ValueError:
            return None
        if site != query.site:
            return None
        folder = str(path.parent.relative_to(query.root))
        return Report(folder, query.store, Link("Notes", {"folder": folder}))

    kind = ReportKind("notes", "notes.json", "Notes", read)
    found = kind.reports_at(SiteQuery(tmp_path, "toy", "toy", "s1"))
    assert [r.folder for r in found] == ["x/a", "y/b/c"]
    assert kind.reports_at(SiteQuery(tmp_path, "toy", "toy", "s3")) == []
    with pytest.raises(InputError, match="bad file name 'a/b.json'"):
        ReportKind("bad", "a/b.json", "Bad", read)
