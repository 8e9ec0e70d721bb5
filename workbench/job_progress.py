"""A job's progress: the last figure its command reported, parsed from the command's own output
formats. `workbench capture` draws a tqdm bar (`capture: 40%|...| 16/40 [...]`) in the log;
`workbench batch run` prints a header with the number of cells, then one line per finished task
(`[capture i/n] ...`, `[cell i/n] ...`); `workbench sae train` prints nothing while it trains but
appends `{"step": ...}` records to `OUT/train_log.jsonl` after a start record with
`total_steps`.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

from workbench.job_runner import LOG_FILE

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


def sae_progress(train_log: Path) -> tuple[float, str] | None:
    """(fraction, text) from an SAE run's `train_log.jsonl`: the last step over the total of its
    last start record."""
    total = step = None
    for line in _head_and_tail(train_log):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn line (the trainer is writing it) or the cut head of the tail
        if "total_steps" in record:
            total = record["total_steps"]
        if "step" in record:
            step = record["step"]
    if not total or step is None:
        return None
    return min(step / total, 1.0), f"step {step}/{total}"


def job_progress(folder: Path, record: dict[str, Any], running: bool) -> tuple[float, str] | None:
    """The job's progress, parsed again only when the file it comes from has changed (the page
    lists every job every few seconds; finished jobs cost nothing)."""
    kind = record["kind"]
    log = folder / LOG_FILE
    if kind == "sae":
        train_log = folder.parent.parent / record["out"] / "train_log.jsonl"
        found = _parsed(str(train_log), kind, _version(train_log))
        if running and found is not None and "sae features" in read_tail(log, 4096):
            return found[0], f"{found[1]}; writing feature statistics"
        return found
    return _parsed(str(log), kind, _version(log))


def _version(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (-1, -1)
    return info.st_size, info.st_mtime_ns


@functools.lru_cache(maxsize=1024)
def _parsed(path: str, kind: str, version: tuple[int, int]) -> tuple[float, str] | None:
    if kind == "sae":
        return sae_progress(Path(path))
    if kind == "capture":
        return capture_progress(read_tail(Path(path), 65536))
    # every task line counts, so the whole log (a batch prints one short line per task)
    return batch_progress(read_tail(Path(path), 16 * 2**20))


def read_tail(path: Path, max_bytes: int) -> str:
    """The last `max_bytes` of `path` as text ("" if it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _head_and_tail(path: Path, max_bytes: int = 65536) -> list[str]:
    """The first line of `path` and the lines of its last `max_bytes` (all lines if small)."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(len(first), size - max_bytes))
            rest = fh.read()
    except OSError:
        return []
    return [first.decode("utf-8", "replace"), *rest.decode("utf-8", "replace").split("\n")]
