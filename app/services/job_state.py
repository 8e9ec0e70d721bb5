"""A job's folder and its state: launching the runner, reading a job back, listing, cancelling.

`RUNS/jobs/<id>/` holds `job.json` (id, kind, title, commands: one argv per step, run in order;
cwd, out: the output folder relative to the runs directory, fields: the validated settings,
created: epoch s, pid: the runner's, which leads the job's process group, and pid_created: its
start time, so that a reused pid is not taken for the job), `log.txt` (the commands' stdout and
stderr), `exit.json` (written atomically by the runner when the commands end: exit_code,
finished, cancelled, started), `cancel.json` (a cancel was asked for), and the runner's
`queue.json` (its place while it waits for its turn) and `started.json` (when its commands
started).

At most `max_jobs()` jobs of a runs directory run at once ($WORKBENCH_MAX_JOBS, default 1; each
job records the limit it was launched under); the others wait in a first-in, first-out queue
kept by their runners (`workbench_app.services.job_runner`). State comes from the files and whether the runner
is alive: queued (no pid yet, or its runner alive and waiting for its turn), running (its
commands started), done, failed, cancelled; a runner that died without writing its exit record
(or a launch that never recorded its runner) is "failed (lost)", and a lost job holds no place in
the queue. Nothing lives only in memory, so any process (a reloaded page, a restarted app) reads
the same. A finished job's folder can be deleted (`delete_job`); its output stays.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InputError
from workbench_app.services.job_progress import job_progress, read_tail
from workbench_app.services.job_runner import (
    CANCEL_FILE,
    EXIT_FILE,
    JOB_FILE,
    LAUNCH_GRACE_S,
    LOG_FILE,
    QUEUE_FILE,
    START_FILE,
    read_json,
    write_json_atomic,
)
from workbench_app.services.runsdir import runs_root

JOBS_DIR = "jobs"
MAX_JOBS_ENV = "WORKBENCH_MAX_JOBS"
DEFAULT_MAX_JOBS = 1
_ID = re.compile(r"^\d{8}-\d{6}-[a-z]+-[0-9a-f]{4}$")
_LAUNCHED: dict[str, subprocess.Popen] = {}  # runners this process started, reaped when listed


@dataclass(frozen=True)
class Job:
    """One job as read from its folder; `state` is queued, running, done, failed or cancelled."""

    id: str
    kind: str
    title: str
    folder: Path
    out: str  # relative to the runs directory
    commands: list[list[str]]
    created: float  # epoch seconds
    pid: int | None
    state: str
    lost: bool = False  # failed: the runner died without writing its exit record
    cancel_requested: bool = False
    exit_code: int | None = None
    finished: float | None = None
    progress: float | None = None  # fraction done, when the command reported one
    progress_text: str = ""
    started: float | None = None  # epoch seconds its commands started (None: they never did)
    queue_place: int | None = None  # queued behind others: 1 is next

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def label(self) -> str:
        if self.lost:
            return "failed (lost)"
        if self.active and self.cancel_requested:
            return f"{self.state} (cancelling)"
        if self.state == "queued" and self.queue_place:
            return f"queued ({ordinal(self.queue_place)})"
        return self.state

    def elapsed_s(self, now: float | None = None) -> float:
        """Seconds its commands have run (0 until they start)."""
        if self.started is None:
            return 0.0
        end = self.finished if self.finished is not None else (now or time.time())
        return max(0.0, end - self.started)

    def waited_s(self, now: float | None = None) -> float:
        """Seconds from its creation to the start of its commands (or to now, or its end)."""
        end = self.started or self.finished or now or time.time()
        return max(0.0, end - self.created)


def max_jobs() -> int:
    """How many jobs of a runs directory may run at once: $WORKBENCH_MAX_JOBS, default 1."""
    value = os.environ.get(MAX_JOBS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_JOBS
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"{MAX_JOBS_ENV}={value!r}: give a whole number of jobs, 1 or more")
    return int(value)


def list_jobs(root: Path | None = None) -> list[Job]:
    """Every job under RUNS/jobs, newest first (a folder without a readable job.json skipped)."""
    _reap()
    root = (root or runs_root()).resolve()
    jobs = []
    for path in (root / JOBS_DIR).glob(f"*/{JOB_FILE}"):
        record = read_json(path)
        if record is not None and _ID.match(path.parent.name):
            jobs.append(_job(path.parent, record))
    return sorted(jobs, key=lambda job: (job.created, job.id), reverse=True)


def read_job(job_id: str, root: Path | None = None) -> Job:
    """The job `job_id` (an id as `list_jobs` gives them)."""
    _reap()
    root = (root or runs_root()).resolve()
    folder = root / JOBS_DIR / job_id
    record = read_json(folder / JOB_FILE) if _ID.match(job_id) else None
    if record is None:
        known = [job.id for job in list_jobs(root)]
        raise InputError(f"no job {job_id!r} under {root / JOBS_DIR}; jobs: {known[:10]}")
    return _job(folder, record)


def cancel_job(job_id: str, root: Path | None = None) -> Job:
    """Ask job `job_id` to stop: recorded as cancelled, SIGTERM to its process group (its
    command is killed if it has not ended `job_runner.GRACE_S` later)."""
    job = read_job(job_id, root)
    if not job.active:
        raise InputError(
            f"job {job_id} is {job.label}: only a queued or running job can be cancelled"
        )
    write_json_atomic(job.folder / CANCEL_FILE, {"requested": time.time()})
    if job.pid is not None:  # running, or its runner waits in the queue (it ends at once)
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.killpg(job.pid, signal.SIGTERM)  # the runner leads its own process group
    return read_job(job_id, root)


def delete_job(job_id: str, root: Path | None = None) -> Job:
    """Delete the folder RUNS/jobs/`job_id` of a finished job (done, failed, cancelled or lost):
    its record and log, never its output. Returns the job as it was."""
    job = read_job(job_id, root)  # a valid id of a job under root/jobs, or InputError
    if job.active:
        raise InputError(
            f"job {job_id} is {job.label}: cancel it first (only a finished job, done, failed, "
            "cancelled or lost, can be deleted)"
        )
    jobs_dir = job.folder.parent
    if job.folder.is_symlink() or job.folder.resolve().parent != jobs_dir.resolve():
        raise InputError(f"job folder {job.folder} is not a folder of {jobs_dir}")
    _LAUNCHED.pop(job_id, None)
    shutil.rmtree(job.folder)
    return job


def delete_finished_jobs(root: Path | None = None) -> list[str]:
    """Delete every finished job's folder (`delete_job`); returns their ids. Active jobs stay."""
    deleted = []
    for job in list_jobs(root):
        if not job.active:
            with contextlib.suppress(InputError, FileNotFoundError):  # it changed meanwhile
                deleted.append(delete_job(job.id, root).id)
    return deleted


def wait_job(
    job_id: str, root: Path | None = None, timeout_s: float = 300.0, poll_s: float = 0.2
) -> Job:
    """Job `job_id` once it is no longer queued or running; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = read_job(job_id, root)
        if not job.active:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.label} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def log_tail(job: Job, max_lines: int = 40, max_bytes: int = 32768) -> str:
    """The last `max_lines` lines of the job's log as a terminal shows them (a progress bar
    redrawn with carriage returns shows its last state)."""
    lines = [_shown(line) for line in read_tail(job.folder / LOG_FILE, max_bytes).split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines[-max_lines:])


def launch(
    root: Path,
    job_id: str,
    kind: str,
    title: str,
    commands: list[list[str]],
    out_dir: Path,
    fields: dict[str, Any],
    files: dict[str, str] | None = None,
) -> Job:
    """Start job `job_id` (an id from `new_id`): write its folder (`files` first: name -> text),
    then the runner, detached; `out_dir` is its output folder, inside `root`. Refused while an
    active job writes to the same folder, or to one inside or around it."""
    import psutil

    limit = max_jobs()
    out = str(out_dir.relative_to(root))
    busy = [job for job in list_jobs(root) if job.active and _overlap(Path(job.out), Path(out))]
    if busy:
        raise InputError(f"job {busy[0].id} ({busy[0].label}) is writing to {busy[0].out!r}")
    folder = root / JOBS_DIR / job_id
    folder.mkdir(parents=True)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    record: dict[str, Any] = {
        "id": job_id,
        "kind": kind,
        "title": title,
        "commands": commands,
        "cwd": str(folder),
        "out": out,
        "fields": fields,
        "created": time.time(),
        "pid": None,
        "pid_created": None,
        "max_jobs": limit,
    }
    write_json_atomic(folder / JOB_FILE, record)
    runner = Path(__file__).with_name("job_runner.py")
    with open(folder / LOG_FILE, "ab") as log:  # the runner's own errors (the commands append)
        process = subprocess.Popen(
            [sys.executable, "-I", str(runner), str(folder)],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a reload or app restart spares it
        )
    _LAUNCHED[job_id] = process
    try:
        started: float | None = psutil.Process(process.pid).create_time()
    except psutil.Error:  # already gone: the exit record tells how it went
        started = None
    write_json_atomic(folder / JOB_FILE, {**record, "pid": process.pid, "pid_created": started})
    return read_job(job_id, root)


def new_id(kind: str) -> str:
    """A new job id: start time (sortable), kind, a random suffix."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(2)}"


def _job(folder: Path, record: dict[str, Any]) -> Job:
    cancel_requested = (folder / CANCEL_FILE).exists()
    ended = read_json(folder / EXIT_FILE)
    begun = read_json(folder / START_FILE)
    created = float(record["created"])
    state, lost, place = "queued", False, None
    if ended is None and record.get("pid") is not None:
        if _alive(record["pid"], record.get("pid_created")):
            if begun is None:
                begun = read_json(folder / START_FILE)  # it may have started meanwhile
            if begun is not None:
                state = "running"
            else:  # its runner waits for its turn (or is starting)
                place = (read_json(folder / QUEUE_FILE) or {}).get("place")
        else:
            ended = read_json(folder / EXIT_FILE)  # it may have ended since the first look
            if ended is None:
                state, lost = ("cancelled", False) if cancel_requested else ("failed", True)
    elif ended is None and cancel_requested:
        state = "cancelled"  # cancelled before it started
    elif ended is None and time.time() - created > LAUNCH_GRACE_S:
        state, lost = "failed", True  # its launcher died before it recorded the runner
    if ended is not None:
        code = ended.get("exit_code")
        state = "cancelled" if ended.get("cancelled") else "done" if code == 0 else "failed"
    started = None if begun is None else begun.get("started")
    if started is None and ended is not None:  # its exit record says too (None: never started)
        started = ended.get("started", created)  # none: a runner from before the queue
    found = job_progress(folder, record, state == "running") if state != "queued" else None
    return Job(
        id=record["id"],
        kind=record["kind"],
        title=record.get("title", record["kind"]),
        folder=folder,
        out=record["out"],
        commands=record["commands"],
        created=created,
        pid=record.get("pid"),
        state=state,
        lost=lost,
        cancel_requested=cancel_requested,
        exit_code=None if ended is None else ended.get("exit_code"),
        finished=None if ended is None else ended.get("finished"),
        progress=None if found is None else (1.0 if state == "done" else found[0]),
        progress_text="" if found is None else found[1],
        started=started,
        queue_place=place if isinstance(place, int) and state == "queued" else None,
    )


def _alive(pid: int, created: float | None) -> bool:
    """Whether `pid` is the job's runner, still running (not a zombie, not a reused pid)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(process.create_time() - created) < 0.5
    except psutil.Error:
        return False


def _reap() -> None:
    """Collect the exit status of runners this process started (no zombies left behind)."""
    for job_id, process in list(_LAUNCHED.items()):
        if process.poll() is not None:
            _LAUNCHED.pop(job_id, None)  # another session's thread may have reaped it


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _overlap(a: Path, b: Path) -> bool:
    """Whether folders `a` and `b` are the same or one holds the other."""
    return a.is_relative_to(b) or b.is_relative_to(a)


def _shown(line: str) -> str:
    """What a terminal shows of `line`: the text after its last carriage return."""
    parts = [part for part in line.split("\r") if part.strip()]
    return parts[-1] if parts else ""
