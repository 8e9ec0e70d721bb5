"""The command line's output layer: step lines, one progress bar, and the noise of the libraries
underneath kept from the user.

A command prints three kinds of thing:

- its **result** on stdout (`result`): a table, a path, one JSON object, and nothing else, so that
  `| jq` and `| head` read only the result;
- **log lines** on stderr (`log`): one line per finished step of long work; `--quiet` drops them;
- **one progress bar** of ours on stderr (`progress`), drawn only when stderr is a terminal and
  `--no-progress` was not given. A `progress` opened while another is open reuses that bar (its
  total and label for the while) instead of stacking a second one, so library code can open one
  around any long loop.

While a command runs (`session`, entered for every verb by `configure`), warnings of the
libraries underneath are collected instead of printed: Python warnings and the WARNING records of
third-party loggers. The session ends with one line per kind of warning and its count (messages
that differ only in their numbers are one kind). Deprecation notices are dropped: they speak to
the workbench's developers, not to its users. Hugging Face's own progress bars ("Loading
weights", "Writing model shards") and its advisory logs are switched off. `-v` turns all of that
off: every warning and log line shows as it happens.

Library code calls only `progress` and `track`. The package imports no heavy library (tqdm only
when a bar is drawn), so `workbench --help` stays fast. Modules: `output` (settings, the writers),
`bar` (the progress bar), `session` (the warnings and the libraries' noise).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from workbench.console.bar import Progress, bars_enabled, progress, track
from workbench.console.output import (
    STATE,
    Settings,
    Timer,
    aligned,
    duration,
    log,
    result,
    warn,
)
from workbench.console.session import (
    SUMMARY_KINDS,
    WarningLog,
    print_warning_summary,
    session,
)

__all__ = [
    "SUMMARY_KINDS",
    "Progress",
    "Settings",
    "Timer",
    "WarningLog",
    "aligned",
    "bars_enabled",
    "configure",
    "duration",
    "log",
    "print_warning_summary",
    "progress",
    "result",
    "session",
    "track",
    "warn",
]


def configure(args: Any) -> None:
    """Read `--quiet`, `--no-progress` (global or the verb's own), `-v` and the verb from the
    parsed arguments, and wrap `args.run` so that the verb runs inside a `session`: warnings
    collected and summarised once at its end, third-party progress bars off."""
    STATE.settings = Settings(
        command=" ".join(part for part in (getattr(args, "command", ""), _action(args)) if part),
        quiet=bool(getattr(args, "quiet", False)),
        progress=not (
            getattr(args, "no_progress_all", False) or getattr(args, "no_progress", False)
        ),
        verbose=bool(getattr(args, "verbose", False)),
        configured=True,
    )
    run = getattr(args, "run", None)
    if run is not None:
        args.run = functools.partial(_run_in_session, run)


def _action(args: Any) -> str:
    """The sub-verb of a two-word command (`batch run`, `zoo build`), if any."""
    for name, value in vars(args).items():
        if name.endswith("_command") and isinstance(value, str):
            return value
    return ""


def _run_in_session(run: Callable[[Any], Any], args: Any) -> Any:
    with session():
        return run(args)
