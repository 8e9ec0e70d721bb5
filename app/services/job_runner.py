"""The detached process a job runs under (see `workbench_app.services.jobs`): it waits for its turn in the
queue, runs the job's commands in order, their stdout and stderr appended to `log.txt`, stops at
the first that fails, and writes the exit record `exit.json` atomically (temporary file +
`os.replace`) when they end.

The queue: at most `max_jobs` (from job.json, set at launch from $WORKBENCH_MAX_JOBS, default 1)
jobs of a runs directory run at once. Before its first command the runner polls the other job
folders every `POLL_S` and waits while `max_jobs` or more jobs are ahead of it: jobs created
before it (by created time, then id: first in, first out) that have not ended, and any job
created after it that has already started (a limit set differently for it, or a launch race).
A job whose runner is gone (lost) is never ahead. While it waits it keeps `queue.json` (its place:
1 is next) up to date; when its commands start it writes `started.json` (the time elapsed time
counts from). A cancel while it waits ends it before any command runs.

`workbench_app.services.job_state.launch` starts it as `python -I job_runner.py JOB_DIR` in a new session,
so it outlives the Streamlit script run that started it, a page reload and the app server, and
it leads the job's process group, which `workbench_app.services.jobs.cancel_job` sends SIGTERM to.

Standard library only, on purpose: the runner only waits beside a command that loads torch
itself, and importing the `workbench` package (torch with it) would cost it over a second and about 225 MB
(measured) for nothing. `-I` keeps this file's folder off `sys.path`, so `workbench/`'s modules cannot
shadow the standard library.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
LOG_FILE = "log.txt"
EXIT_FILE = "exit.json"
CANCEL_FILE = "cancel.json"
START_FILE = "started.json"
QUEUE_FILE = "queue.json"
#: seconds between two looks at the queue while a job waits for its turn
POLL_S = 0.5
#: seconds a job's launcher has to record its runner's pid; a job without one after that is lost
LAUNCH_GRACE_S = 60.0
#: seconds by which a process's start time may differ from the one recorded for it
START_TOLERANCE_S = 0.5
#: seconds a command has to end after SIGTERM before it is killed
GRACE_S = 10.0


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` so that a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


class _Stop:
    """SIGTERM (or SIGINT, SIGHUP) received: passed on to the running command, which is killed
    if it has not ended `GRACE_S` later."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.child: subprocess.Popen | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.at is None:
            self.at = time.monotonic()
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)  # already sent if the whole group was signalled

    def wait(self, child: subprocess.Popen) -> int:
        self.child = child
        while True:
            try:
                return child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if self.at is not None and time.monotonic() - self.at > GRACE_S:
                    child.kill()


def run(folder: Path) -> int:
    """Run the job in `folder`; returns the exit code of the last command run (0: all ran)."""
    stop = _Stop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    job = json.loads((folder / JOB_FILE).read_text())
    # log lines as they are printed, and the commands' progress bars as lines in the log
    # (`workbench.console.bar.PROGRESS_ENV`, named here: this runner does not import workbench)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WORKBENCH_PROGRESS": "lines"}
    code, ran, started = 0, 0, None
    with open(folder / LOG_FILE, "ab", buffering=0) as log:
        _wait_turn(folder, job, stop, log)
        if stop.at is None and not (folder / CANCEL_FILE).exists():
            started = time.time()
            write_json_atomic(folder / START_FILE, {"started": started})
        for argv in job["commands"]:
            if stop.at is not None or (folder / CANCEL_FILE).exists():
                code = -signal.SIGTERM
                break
            log.write(f"$ {shlex.join(argv)}\n".encode())
            try:
                child = subprocess.Popen(
                    argv,
                    cwd=job["cwd"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            except OSError as exc:
                log.write(f"job runner: cannot start the command: {exc}\n".encode())
                code = 127
                break
            ran += 1
            code = stop.wait(child)
            if code != 0:
                break
    cancelled = code != 0 and (stop.at is not None or (folder / CANCEL_FILE).exists())
    write_json_atomic(
        folder / EXIT_FILE,
        {
            "exit_code": code,
            "finished": time.time(),
            "cancelled": cancelled,
            "commands_run": ran,
            "started": started,
        },
    )
    return code


def _wait_turn(folder: Path, job: dict[str, Any], stop: _Stop, log: Any) -> None:
    """Return once fewer than the job's `max_jobs` jobs are ahead of it (module docstring), or it
    is cancelled; meanwhile keep its place in `queue.json`."""
    limit = max(1, int(job.get("max_jobs") or 1))
    place, since = 0, time.monotonic()
    while stop.at is None and not (folder / CANCEL_FILE).exists():
        ahead = jobs_ahead(folder, job)
        if len(ahead) < limit:
            break
        if len(ahead) - limit + 1 != place:
            place = len(ahead) - limit + 1
            write_json_atomic(
                folder / QUEUE_FILE,
                {"place": place, "ahead": ahead, "max_jobs": limit, "checked": time.time()},
            )
            log.write(
                f"job runner: waiting for its turn, place {place} in the queue (at most {limit} "
                f"at once; ahead of it: {', '.join(ahead)})\n".encode()
            )
        time.sleep(POLL_S)
    if place:
        waited = time.monotonic() - since
        done = "cancelled" if stop.at is not None or (folder / CANCEL_FILE).exists() else "starting"
        log.write(f"job runner: {done} after {waited:.1f} s in the queue\n".encode())
        with contextlib.suppress(OSError):
            (folder / QUEUE_FILE).unlink()


def jobs_ahead(folder: Path, job: dict[str, Any]) -> list[str]:
    """Ids of the jobs ahead of `job` (in `folder`) in its runs directory's queue: not ended,
    runner alive, and created before it or already started; in queue order."""
    mine = (float(job["created"]), str(job["id"]))
    ahead = []
    try:
        others = [path for path in folder.parent.iterdir() if path != folder]
    except OSError:
        return []
    for other in others:
        if other.name.startswith(".") or (other / EXIT_FILE).exists():
            continue  # a finished job costs one look
        record = read_json(other / JOB_FILE)
        try:
            key = (float(record["created"]), str(record["id"])) if record else None
        except (KeyError, TypeError, ValueError):
            key = None
        if key is None or record is None:
            continue  # not a job, or one being written (its runner is not started yet)
        if (key < mine or (other / START_FILE).exists()) and runner_alive(record):
            ahead.append(key)
    return [job_id for _, job_id in sorted(ahead)]


def runner_alive(record: dict[str, Any]) -> bool:
    """Whether the runner of the job `record` (its job.json) may still run: its pid alive, or no
    pid recorded yet by a launch less than `LAUNCH_GRACE_S` ago."""
    pid = record.get("pid")
    if pid is None:
        return time.time() - float(record.get("created") or 0) < LAUNCH_GRACE_S
    return pid_alive(int(pid), record.get("pid_created"))


def pid_alive(pid: int, created: float | None) -> bool:
    """Whether process `pid` runs (not a zombie) and started at `created` (epoch s, as psutil
    gives it; None: not checked), so that a reused pid is not taken for it. Linux reads
    /proc/PID/stat; elsewhere only whether the pid exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    except OSError:
        return False
    fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) ", comm may hold spaces
    if fields[0] in (b"Z", b"X", b"x"):
        return False
    if created is None:
        return True
    ticks = int(fields[19])  # field 22 of the stat line: start time, clock ticks after boot
    try:
        started = _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return True
    return abs(started - created) < START_TOLERANCE_S


@functools.lru_cache(maxsize=1)
def _boot_time() -> float:
    with open("/proc/stat", "rb") as fh:
        for line in fh:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


if __name__ == "__main__":
    sys.exit(0 if run(Path(sys.argv[1])) == 0 else 1)
