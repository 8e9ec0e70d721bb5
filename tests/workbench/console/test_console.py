"""The CLI's output layer: results on stdout, log lines on stderr, one progress bar, and the
libraries' warnings collected and summarised once with their count."""

from __future__ import annotations

import argparse
import io
import logging
import os
import warnings

import pytest

from workbench import console
from workbench.console.output import STATE


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so that bars are drawn into it."""

    def isatty(self) -> bool:
        return True


class ThirdPartyWarning(UserWarning):
    """A warning category that reads as a library's (like sklearn's ConvergenceWarning)."""


ThirdPartyWarning.__module__ = "sklearn.exceptions"


@pytest.fixture(autouse=True)
def fresh_settings():
    """Each test configures the console itself; the module's state is put back after."""
    saved = STATE.settings
    yield
    STATE.settings = saved
    STATE.bar = None


def _configure(run=None, **flags) -> argparse.Namespace:
    args = argparse.Namespace(**{"command": "demo", "verbose": False, "quiet": False, **flags})
    if run is not None:
        args.run = run
    console.configure(args)
    return args


def test_a_warning_repeated_45_times_is_printed_once_with_its_count(capsys):
    def run(args):
        for i in range(45):
            warnings.warn(
                f"Maximum number of iterations {i} reached", ThirdPartyWarning, stacklevel=1
            )
        warnings.warn("this function moves in 2.0", DeprecationWarning, stacklevel=1)
        warnings.warn("and so does this one", FutureWarning, stacklevel=1)
        console.result("the result")
        return 0

    args = _configure(run)
    assert args.run(args) == 0
    out, err = capsys.readouterr()
    assert out == "the result\n"
    assert err.count("Maximum number of iterations") == 1
    assert "(sklearn ThirdPartyWarning, 45 times, numbers vary)" in err
    assert "moves in 2.0" not in err and "so does this" not in err  # deprecations dropped
    assert len(err.splitlines()) == 1


def test_the_session_restores_warning_filters_and_logging():
    filters, show = list(warnings.filters), warnings.showwarning
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with console.session():
        assert warnings.showwarning is not show
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert warnings.filters == filters and warnings.showwarning is show
    assert root.handlers == handlers and root.level == level


def test_library_log_records_are_counted_ours_are_printed_once(capsys):
    def run(args):
        for _ in range(3):
            logging.getLogger("umap.umap_").warning("n_jobs value 1 overridden to %d", 1)
            logging.getLogger("workbench.zoo").warning("zoo entry x is incomplete; rebuilding it")
        return 0

    args = _configure(run)
    args.run(args)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "workbench demo: warning: zoo entry x is incomplete; rebuilding it"
    assert err[1].startswith("workbench demo: warnings, each kind once")
    assert sorted(err[2:]) == [
        "  n_jobs value 1 overridden to 1 (umap WARNING, 3 times)",
        "  zoo entry x is incomplete; rebuilding it (workbench.zoo WARNING, 2 more times)",
    ]


def test_summary_groups_messages_that_differ_in_numbers_and_caps_the_kinds():
    log = console.WarningLog()
    for i in range(3):
        log.add(
            "sklearn", "ConvergenceWarning", f"lbfgs failed to converge after {100 + i} iterations"
        )
    for kind in range(7):
        log.add("umap", "UserWarning", f"kind {chr(97 + kind)}")
    lines = log.summary(limit=5)
    assert lines[0] == (
        "lbfgs failed to converge after 100 iterations "
        "(sklearn ConvergenceWarning, 3 times, numbers vary)"
    )
    assert lines[1] == "kind a (umap UserWarning, once)"
    assert len(lines) == 6
    assert lines[-1].startswith("3 more kinds of warning (3 in all)")


def test_summary_lists_the_libraries_warnings_before_ours():
    log = console.WarningLog()
    for _ in range(9):
        log.add("workbench", "UserWarning", "twonn: dropped duplicate rows")
    log.add("sklearn", "ConvergenceWarning", "lbfgs failed to converge")
    assert log.summary(limit=1) == [
        "lbfgs failed to converge (sklearn ConvergenceWarning, once)",
        "1 more kind of warning (9 in all); -v shows every warning as it happens",
    ]


def test_quiet_keeps_stdout_to_the_result_and_stderr_to_errors(capsys):
    def run(args):
        console.log("[1/2] zoo  3 s")
        warnings.warn("noisy", ThirdPartyWarning, stacklevel=1)
        console.result('{"ok": true}')
        return 0

    args = _configure(run, quiet=True)
    args.run(args)
    out, err = capsys.readouterr()
    assert out == '{"ok": true}\n' and err == ""


def test_no_bar_when_stderr_is_not_a_terminal(capsys):
    _configure()
    with console.progress(10, "capture") as bar:
        bar.update(3)
        assert STATE.bar is None
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("flag", ["no_progress_all", "no_progress"])
def test_no_progress_global_or_per_verb_turns_the_bar_off(monkeypatch, flag):
    monkeypatch.setattr("sys.stderr", _Terminal())
    _configure(**{flag: True})
    assert not console.bars_enabled()
    _configure()
    assert console.bars_enabled()


def test_nested_progress_reuses_the_one_bar(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    _configure()
    with console.progress(None, "[1/3] zoo", unit="") as outer:
        bar = STATE.bar
        with console.progress(100, "train toy-lm", unit="step") as inner:
            assert STATE.bar is bar  # no second bar
            inner.update(40)
            assert (bar.total, bar.n, bar.desc) == (100, 40, "[1/3] zoo > train toy-lm")
        assert (bar.total, bar.n, bar.desc) == (None, 0, "[1/3] zoo")
        outer.update()
    assert STATE.bar is None
    assert "train toy-lm" in terminal.getvalue()


def test_track_counts_items_and_closes_its_bar_on_break(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    _configure()
    seen = []
    for item in console.track(range(10), "steps"):
        seen.append(item)
        if item == 4:
            assert STATE.bar.n == 4
            break
    assert seen == [0, 1, 2, 3, 4]
    assert STATE.bar is None  # the generator closed, and the bar with it


def test_lines_written_under_an_open_bar_keep_the_bar_whole(monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    _configure()
    with console.progress(5, "capture"):
        console.log("[2/3] store toy-lm  4.0 s")
    assert "[2/3] store toy-lm  4.0 s\n" in terminal.getvalue()


def test_huggingface_bars_are_off_inside_a_session_and_back_after():
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    _configure()
    with console.session():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()


def test_duration_and_aligned_columns():
    assert [console.duration(s) for s in (0.42, 12.4, 185, 3725)] == [
        "0.4 s",
        "12 s",
        "3m05s",
        "1h02m",
    ]
    rows = [("zoo toy-lm", "test_loss = 1.9"), ("store minilm-text", "4,096 rows")]
    assert console.aligned(rows) == [
        "  zoo toy-lm         test_loss = 1.9",
        "  store minilm-text  4,096 rows",
    ]


def test_into_a_log_the_bar_is_written_as_lines_when_asked(monkeypatch):
    """`WORKBENCH_PROGRESS=lines` (the web app's jobs): whole lines in tqdm's layout, which the
    Jobs page parses (`capture: 40%|...| 16/40`), into a stderr that is not a terminal."""
    from workbench_app.services.job_progress import capture_progress

    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    monkeypatch.setenv("WORKBENCH_PROGRESS", "lines")
    _configure()
    with console.progress(40, "capture", unit="ex") as bar:
        assert not bar.live
        bar.update(16)
        STATE.bar.refresh()  # the interval between lines is 2 s; draw now
        assert capture_progress(log.getvalue()) == (16 / 40, "16/40 examples")
        bar.update(24)  # within the interval: no line yet, but the bar's end writes one
    lines = log.getvalue().splitlines()
    assert all("\r" not in line for line in lines) and len(lines) == 3  # 0, 16, 40 of 40
    assert capture_progress(log.getvalue()) == (1.0, "40/40 examples")
    monkeypatch.delenv("WORKBENCH_PROGRESS")
    assert not console.bars_enabled()


def test_hub_bars_switched_back_on_add_no_warning_line(monkeypatch, capsys):
    """transformers imported with its bar on while huggingface_hub read
    HF_HUB_DISABLE_PROGRESS_BARS=1 at its import (QUIET_ENV, set by an earlier session in the
    process): each session switches transformers' bar off and back on, and back on calls the
    hub's `enable_progress_bars`, which warns. That warning is swallowed, not a line in every
    later command's output (it once doubled every error line of a test worker)."""
    import importlib

    from transformers.utils import logging as hf_logging

    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # the module, not the class

    from workbench.cli.main import main

    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    monkeypatch.setattr(hf_logging, "_tqdm_active", True)
    for _ in range(2):
        assert main(["sites", "minilm", "--dtype", "nonsense"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "unknown dtype 'nonsense'" in err[0], err
