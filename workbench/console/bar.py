"""The one progress bar: `progress` opens it (or, inside another, reuses the open one), `track`
walks an iterable under it.

Where it goes (`bar_mode`): a live bar on stderr when it is a terminal; nothing when stderr is
not a terminal, or the user asked for `--no-progress` or `--quiet`, or in a worker process. A
program that reads the log of a command it started (the web app's jobs) sets
`WORKBENCH_PROGRESS=lines`: then the bar is written as whole lines in tqdm's layout, at most one
every `LINE_INTERVAL_S` seconds, into a stderr that is not a terminal.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Iterable, Iterator, Sized
from typing import Any, TypeVar

from workbench.console.output import STATE

T = TypeVar("T")

PROGRESS_ENV = "WORKBENCH_PROGRESS"
LINE_INTERVAL_S = 2.0


class Progress:
    """The handle `progress` yields: `update(n)` advances the bar, `note(text)` shows what it is
    on. A no-op when no bar is drawn. `live`: a bar redrawn in place on a terminal (a caller
    that would otherwise print a line per item can leave it to the bar)."""

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar
        self.live = bar is not None and not isinstance(bar, _line_bar_class())

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def note(self, text: str, width: int = 48) -> None:
        if self._bar is not None:
            short = text if len(text) <= width else text[: width - 3] + "..."
            self._bar.set_postfix_str(short, refresh=False)


def bar_mode() -> str | None:
    """ "terminal" (a live bar), "lines" (`WORKBENCH_PROGRESS=lines` into a log), or None: no
    bar (not wanted, `--quiet`, a worker process, or stderr is not a terminal). In library use
    without `configure`, a notebook counts as a terminal."""
    import multiprocessing  # here: 10 ms that `workbench --help` need not pay

    s = STATE.settings
    if not s.progress or s.quiet or multiprocessing.parent_process() is not None:
        return None
    if not s.configured and "ipykernel" in sys.modules:
        return "terminal"
    isatty = getattr(sys.stderr, "isatty", None)
    if isatty and isatty():
        return "terminal"
    return "lines" if os.environ.get(PROGRESS_ENV) == "lines" else None


def bars_enabled() -> bool:
    """Whether `progress` draws anything (see `bar_mode`)."""
    return bar_mode() is not None


@contextlib.contextmanager
def progress(
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    enabled: bool = True,
) -> Iterator[Progress]:
    """A progress bar of `total` units (None: a counter) on stderr, closed on exit.

    Inside another `progress`, the open bar is reused: it shows this one's count, labelled
    `outer > desc`, until this one exits, then the outer one's again. `enabled=False` (the
    caller's own switch, e.g. `capture_to_store(progress=False)`) draws nothing.
    """
    mode = bar_mode() if enabled else None
    if mode is None:
        yield Progress()
        return
    bar = STATE.bar
    if bar is None:
        bar = _new_bar(total, desc, unit, initial, mode)
        STATE.bar = bar
        try:
            yield Progress(bar)
        finally:
            STATE.bar = None
            bar.close()
        return
    saved = (bar.total, bar.n, bar.unit, bar.desc, bar.postfix)
    label = f"{bar.desc} > {desc}" if desc and bar.desc else desc or bar.desc
    _retarget(bar, total, initial, unit, label, "")
    try:
        yield Progress(bar)
    finally:
        _retarget(bar, *saved)


def track(
    items: Iterable[T], desc: str = "", unit: str = "it", total: int | None = None
) -> Iterator[T]:
    """`items`, advancing a `progress` bar by one per item (`total` defaults to `len(items)`)."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    with progress(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update()


def _new_bar(total: int | None, desc: str, unit: str, initial: int, mode: str) -> Any:
    if mode == "lines":
        cls: Any = _line_bar_class()
        layout = {"mininterval": LINE_INTERVAL_S, "ncols": 100}
    else:
        notebook = not STATE.settings.configured and "ipykernel" in sys.modules
        cls = importlib.import_module("tqdm.auto" if notebook else "tqdm").tqdm
        layout = {"mininterval": 0.2, "dynamic_ncols": True}
    return cls(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        leave=False,
        bar_format=_bar_format(total, unit),
        **layout,
    )


@functools.cache
def _line_bar_class() -> type:
    """tqdm writing whole lines (for a log file, `WORKBENCH_PROGRESS=lines`), made on first use
    so that importing the console does not import tqdm."""
    from tqdm import tqdm

    class LineBar(tqdm):
        written = -1  # the count of the last line written

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            # tqdm displays "" to wipe a bar on close: here the last count is written instead,
            # unless that line is already there; False spares the log tqdm's "\r" after it
            if msg != "" or self.n != self.written:
                self.fp.write(f"{self}\n")
                self.fp.flush()
                self.written = self.n
            return msg != ""

        def clear(self, nolock: bool = False) -> None:
            pass  # a line once written stays

    return LineBar


def _bar_format(total: int | None, unit: str) -> str | None:
    """tqdm's own layout for a known total; `label: 12 steps [00:31]` for a count, and
    `label [00:31]` for a count without a unit (a step of the demo)."""
    if total is not None:
        return None
    if not unit:
        return "{desc} [{elapsed}{postfix}]"
    return "{desc}: {n_fmt} {unit} [{elapsed}{postfix}]"


def _retarget(bar: Any, total: Any, n: int, unit: str, desc: str, postfix: Any) -> None:
    """Point the open bar at other work without resetting its clock, and redraw it."""
    bar.total, bar.n, bar.last_print_n, bar.unit = total, n, n, unit
    bar.desc = desc
    bar.postfix = postfix
    bar.bar_format = _bar_format(total, unit)
    bar.refresh()
