"""A job's progress: the last figure its command reported, parsed from the command's own output
formats. `workbench capture` draws a tqdm bar (`capture: 40%|...| 16/40 [...]`) in the log;
`workbench batch run` prints a header with the number of cells, then one line per finished task
(`[capture i/n] ...`, `[cell i/n] ...`). Which parser reads which file, a job's kind declares
(`JobKind.progress`, `progress_file`): a family's job parses its own (the SAE family's, the
trainer's `train_log.jsonl`); these two are the core verbs'.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from pathlib import Path
from typing import Any

from workbench.analysis.plugins import job_kinds
from workbench_app.services.job_runner import LOG_FILE

_CAPTURE_BAR = re.compile(r"capture:\s*\d+%\|[^|\r\n]*\|\s*(\d+)/(\d+)")
_BATCH_HEAD = re.compile(r"^batch .+: \d+ captures, (\d+) cells -> ", re.M)
_BATCH_DONE_BEFORE = re.compile(r"^(\d+) of \d+ cells already done", re.M)
_BATCH_CAPTURE = re.compile(r"^\[capture (\d+)/(\d+)\]", re.M)
_BATCH_CELL = re.compile(r"^\[cell[] ]", re.M)
_BATCH_END = re.compile(r"^done \d+, failed \d+, pending \d+ of \d+ cells", re.M)


def capture_progress(log: str) -> tuple[float, str] | None:
    """(fraction, text) from the last `capture` progress bar (tqdm's `n/total`) in `log`."""
    found = _CAPTURE_BAR.findall(log)
    if not found:
        return None
    n, total = (int(x) for x in found[-1])
    return (n / total if total else 1.0), f"{n}/{total} examples"


def batch_progress(log: str) -> tuple[float, str] | None:
    """(fraction, text) from the `workbench batch run` lines in `log`: its header (the number of
    cells), the cells already done, and one `[capture i/n]` or `[cell ...]` line per task; the
    fraction counts captures and cells alike."""
    head = _BATCH_HEAD.search(log)
    if head is None:
        return None
    n_cells = int(head.group(1))
    before = _BATCH_DONE_BEFORE.search(log)
    cells = (int(before.group(1)) if before else 0) + len(_BATCH_CELL.findall(log))
    captures = _BATCH_CAPTURE.findall(log)
    n, total = (int(x) for x in captures[-1]) if captures else (0, 0)
    text = f"{cells}/{n_cells} cells" + (f", {n}/{total} captures" if total else "")
    if _BATCH_END.search(log):
        return 1.0, text
    units = n_cells + total
    return ((cells + n) / units if units else 0.0), text


def capture_log_progress(log: Path) -> tuple[float, str] | None:
    """`capture_progress` of the end of the log file `log` (its last bar is there)."""
    return capture_progress(read_tail(log, 65536))


def batch_log_progress(log: Path) -> tuple[float, str] | None:
    """`batch_progress` of the log file `log` (every task line counts, so the whole log: a
    batch prints one short line per task)."""
    return batch_progress(read_tail(log, 16 * 2**20))


def job_progress(folder: Path, record: dict[str, Any], running: bool) -> tuple[float, str] | None:
    """The job's progress as its kind declares it (`JobKind.progress` of its `progress_file`),
    parsed again only when that file has changed (the page lists every job every few seconds;
    finished jobs cost nothing); while a later step of its commands runs, with that step's note.
    None for a kind that reports none or is no longer installed."""
    kind = job_kinds().get(record["kind"])
    if kind is None or kind.progress is None:
        return None
    log = folder / LOG_FILE
    path = folder.parent.parent / record["out"] / kind.progress_file if kind.progress_file else log
    found = _parsed(str(path), kind.name, _version(path))
    if running and found is not None and any(kind.step_notes):
        note = _step_note(kind.step_notes, record["commands"], read_tail(log, 16384))
        if note:
            return found[0], f"{found[1]}; {note}"
    return found


def _step_note(notes: tuple[str, ...], commands: list[list[str]], log: str) -> str:
    """The note of the last step whose command line the runner has written to `log`."""
    for i in reversed(range(len(commands))):
        if f"$ {shlex.join(commands[i])}" in log:
            return notes[i] if i < len(notes) else ""
    return ""


def _version(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (-1, -1)
    return info.st_size, info.st_mtime_ns


@functools.lru_cache(maxsize=1024)
def _parsed(path: str, kind: str, version: tuple[int, int]) -> tuple[float, str] | None:
    progress = job_kinds()[kind].progress
    return None if progress is None else progress(Path(path))


def read_tail(path: Path, max_bytes: int) -> str:
    """The last `max_bytes` of `path` as text ("" if it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
