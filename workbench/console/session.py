"""The session a verb runs in: warnings of the libraries underneath collected and summarised
once with their count, deprecation notices dropped, Hugging Face's bars and advisory logs off;
everything as it was once the session ends."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from workbench.console.output import STATE, prefix, warn, write

#: Top-level packages whose log records are ours: printed as they happen, never summarised.
OUR_PACKAGES = ("workbench", "analyses", "probes", "workbench_app", "__main__")

#: Warning categories treated as deprecation notices (dropped unless -v).
DEPRECATIONS: tuple[type[Warning], ...] = (
    DeprecationWarning,
    PendingDeprecationWarning,
    FutureWarning,
)

#: Environment switches that keep the Hugging Face libraries' bars and advisory logs quiet. They
#: are read when those libraries are imported, so they are set before any of them is.
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # huggingface_hub, and transformers' tqdm follows it
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}

#: At most this many kinds of warning are listed at the end; the rest are counted in one line.
SUMMARY_KINDS = 8


def _normalise(message: str) -> str:
    """The kind of a message: its first line with every number replaced by `#`."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return re.sub(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", "#", first)


def _package_of(filename: str) -> str:
    """The top-level package a source file belongs to (`sklearn` for .../site-packages/sklearn/
    utils/x.py), else the file's stem."""
    parts = re.split(r"[\\/]", filename)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            index = parts.index(marker)
            if index + 1 < len(parts):
                return parts[index + 1].removesuffix(".py")
    for package in OUR_PACKAGES:
        if package in parts[:-1]:
            return package
    return os.path.splitext(parts[-1])[0]


@dataclass
class _Kind:
    first: str  # the first message of this kind, as it was
    origin: str  # the package it came from: `sklearn`, `umap`, `workbench.zoo`
    what: str  # its category or log level: `ConvergenceWarning`, `WARNING`
    count: int = 0
    shown: bool = False  # printed when it first came (our own log records): repeats counted
    varies: bool = False  # some of its messages had other numbers than the first


@dataclass
class WarningLog:
    """Warnings and log records counted by kind, in the order their kinds first came."""

    kinds: dict[tuple[str, str, str], _Kind] = field(default_factory=dict)

    def add(self, origin: str, what: str, message: str, shown: bool = False) -> None:
        """Count `message` from package `origin` (`what`: its category or level); `shown`: it
        was printed as it came, so only its repeats are summarised."""
        key = (origin, what, _normalise(message))
        kind = self.kinds.get(key)
        if kind is None:
            self.kinds[key] = _Kind(message.strip(), origin, what, shown=shown)
            if shown:
                return
            kind = self.kinds[key]
        kind.count += 1
        kind.varies = kind.varies or message.strip() != kind.first

    def add_warning(self, message: Warning | str, category: type[Warning], filename: str) -> None:
        module = category.__module__.split(".")[0]
        origin = module if module != "builtins" else _package_of(filename)
        self.add(origin, category.__name__, str(message))

    def summary(self, limit: int = SUMMARY_KINDS) -> list[str]:
        """One line per kind (the libraries' first, then ours; the most frequent first; at most
        `limit`), then one counting the rest.
        A kind already shown counts its repeats (`2 more times`); one seen once says `once`; the
        first message stands for the others, which `numbers vary` flags where they differed."""
        kinds = sorted(
            (k for k in self.kinds.values() if k.count),
            key=lambda k: (k.origin.split(".")[0] in OUR_PACKAGES, -k.count),
        )
        lines = []
        for kind in kinds[:limit]:
            text = kind.first.splitlines()[0].rstrip(":") if kind.first else ""
            if len(text) > 160:
                text = text[:157] + "..."
            if kind.shown:
                times = f"{kind.count} more time{'s' if kind.count > 1 else ''}"
            else:
                times = "once" if kind.count == 1 else f"{kind.count} times"
            varies = ", numbers vary" if kind.varies else ""
            lines.append(f"{text} ({kind.origin} {kind.what}, {times}{varies})")
        rest = kinds[limit:]
        if rest:
            lines.append(
                f"{len(rest)} more kind{'s' if len(rest) > 1 else ''} of warning "
                f"({sum(k.count for k in rest)} in all); "
                "-v shows every warning as it happens"
            )
        return lines


class _LogHandler(logging.Handler):
    """Root handler of a session: our records printed (each distinct message once), third-party
    WARNING records counted into the session's WarningLog; everything printed under -v."""

    def __init__(self, collected: WarningLog, verbose: bool) -> None:
        super().__init__(logging.INFO if verbose else logging.WARNING)
        self.collected = collected
        self.verbose = verbose
        self.printed: set[str] = set()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # the root logger is named after the file that logged (libraries call logging.warning)
            origin = record.name.split(".")[0]
            if origin == "root":
                origin = _package_of(record.pathname)
            if self.verbose:
                write(self.format(record), sys.stderr)
            elif origin not in OUR_PACKAGES:
                self.collected.add(origin, record.levelname, record.getMessage())
            else:
                message = record.getMessage()
                self.collected.add(record.name, record.levelname, message, shown=True)
                if message in self.printed:
                    return
                self.printed.add(message)
                if record.levelno >= logging.ERROR:
                    write(f"{prefix()}: error: {message}", sys.stderr)
                else:
                    warn(message)
        except Exception:  # a handler must never raise into the code that logged
            self.handleError(record)


_OPEN: list[WarningLog] = []  # the warnings of the open sessions, innermost last


@contextlib.contextmanager
def session() -> Iterator[WarningLog]:
    """Collect warnings and quiet the libraries for the duration; print the summary at the end.

    Restores the warning filters, `warnings.showwarning`, the root logger and the environment on
    exit. Libraries first imported during the session keep the quiet settings they read.
    """
    s = STATE.settings
    collected = WarningLog()
    _OPEN.append(collected)
    root = logging.getLogger()
    handler = _LogHandler(collected, s.verbose)
    level = root.level
    env = {} if s.verbose else {k: os.environ.get(k) for k in QUIET_ENV}
    try:
        with warnings.catch_warnings():
            if s.verbose:
                warnings.simplefilter("default")
                warnings.showwarning = _show_now
            else:
                warnings.simplefilter("always")
                for category in DEPRECATIONS:
                    warnings.simplefilter("ignore", category)
                warnings.showwarning = functools.partial(_collect, collected)
            root.addHandler(handler)
            root.setLevel(logging.INFO if s.verbose else logging.WARNING)
            for key, value in QUIET_ENV.items() if not s.verbose else ():
                os.environ.setdefault(key, value)
            with _quiet_imported_libraries(not s.verbose):
                yield collected
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for key, before in env.items():
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before
        _OPEN.remove(collected)
        print_warning_summary(collected)


def _collect(
    collected: WarningLog,
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: Any = None,
) -> None:
    if "Deprecat" in category.__name__:  # e.g. NumbaDeprecationWarning, not a DeprecationWarning
        return
    collected.add_warning(message, category, filename)


def _show_now(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: Any = None,
) -> None:
    warn(f"{message} ({_package_of(filename)} {category.__name__})")


def print_warning_summary(collected: WarningLog | None = None) -> None:
    """Print the summary of the collected warnings (the open session's when None) and forget
    them, so a command can show it before its final table; the session's end prints the rest."""
    if collected is None:
        if not _OPEN:
            return
        collected = _OPEN[-1]
    lines = collected.summary()
    for kind in collected.kinds.values():
        kind.count = 0  # printed: a later summary counts only what comes after
    if not lines or STATE.settings.quiet:
        return
    if len(lines) == 1:
        warn(lines[0])
        return
    write(f"{prefix()}: warnings, each kind once (-v shows all as they happen):", sys.stderr)
    for line in lines:
        write(f"  {line}", sys.stderr)


def _without_warnings(step: Callable[[], None]) -> None:
    """Run `step` with warnings ignored: huggingface_hub's `enable_progress_bars` (which
    transformers' `enable_progress_bar` calls) warns, and leaves the bars off, when
    HF_HUB_DISABLE_PROGRESS_BARS was set at its import, as QUIET_ENV sets it once a session has
    run in this process; that is the state wanted, not news for the user."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step()


@contextlib.contextmanager
def _quiet_imported_libraries(quiet: bool) -> Iterator[None]:
    """The Hugging Face libraries already imported read QUIET_ENV too early: switch their bars
    and advisory logs off through their own functions for the session, and back after."""
    undo: list[Callable[[], None]] = []
    if quiet:
        for name in ("huggingface_hub.utils", "datasets.utils.tqdm"):  # the same switches
            bars = sys.modules.get(name)
            if bars is not None and not bars.are_progress_bars_disabled():
                bars.disable_progress_bars()
                undo.append(functools.partial(_without_warnings, bars.enable_progress_bars))
        hf_logging = sys.modules.get("transformers.utils.logging")
        if hf_logging is not None:
            if hf_logging.is_progress_bar_enabled():
                hf_logging.disable_progress_bar()  # on again: it calls the hub's, which warns
                undo.append(functools.partial(_without_warnings, hf_logging.enable_progress_bar))
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            undo.append(functools.partial(hf_logging.set_verbosity, verbosity))
    try:
        yield
    finally:
        for step in reversed(undo):
            step()
