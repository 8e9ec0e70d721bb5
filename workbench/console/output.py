"""The console's state (what the user asked of the output, the open bar) and its writers:
the result on stdout, log, warning and error lines on stderr, each written around the open bar."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True)
class Settings:
    """What the user asked of the output (`configure` reads them from the command line).

    Attributes:
        command: the verb, named in warning and error lines (`workbench demo: warning: ...`).
        quiet: no log lines, no bar, no warning summary: stdout gets the result, stderr errors.
        progress: a progress bar is wanted (`--no-progress` clears it); it is drawn only on a
            terminal.
        verbose: every log record and warning shows as it happens; nothing is summarised.
        configured: set by `configure`; library use without it draws bars only in the main
            process on a terminal or in a notebook, and touches no warning or logging setting.
    """

    command: str = ""
    quiet: bool = False
    progress: bool = True
    verbose: bool = False
    configured: bool = False


@dataclass
class State:
    settings: Settings = field(default_factory=Settings)
    bar: Any = None  # the one open tqdm bar, if any


STATE = State()


def result(text: str = "") -> None:
    """Print `text` (the command's result) on stdout."""
    write(text, sys.stdout)


def log(text: str) -> None:
    """Print a log line on stderr, unless `--quiet`."""
    if not STATE.settings.quiet:
        write(text, sys.stderr)


def warn(text: str) -> None:
    """Print `workbench VERB: warning: text` on stderr (even under `--quiet`)."""
    write(f"{prefix()}: warning: {text}", sys.stderr)


def prefix() -> str:
    """`workbench VERB`, the start of the warning and error lines."""
    command = STATE.settings.command
    return f"workbench {command}" if command else "workbench"


def write(text: str, stream: TextIO) -> None:
    """Write one line, clearing the open bar first and redrawing it after."""
    bar = STATE.bar
    if bar is not None:
        bar.clear()
    print(text, file=stream, flush=True)
    if bar is not None:
        bar.refresh()


def duration(seconds: float) -> str:
    """`0.4 s`, `12 s`, `3m05s`, `1h02m`: a step's wall time, as short as it reads."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def aligned(rows: list[tuple[str, str]], indent: str = "  ", max_width: int = 40) -> list[str]:
    """Two-column lines: the first column padded to its longest entry (at most `max_width`; a
    longer entry keeps its full text and pushes its row's second column along)."""
    width = min(max((len(left) for left, _ in rows), default=0), max_width)
    return [f"{indent}{left:<{width}}  {right}".rstrip() for left, right in rows]


class Timer:
    """Wall time since construction, for step lines: `Timer().elapsed()` -> `12 s`."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def elapsed(self) -> str:
        return duration(self.seconds())
