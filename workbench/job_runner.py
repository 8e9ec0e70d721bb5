"""The detached process a job runs under (see `workbench.jobs`): it runs the job's commands in
order, their stdout and stderr appended to `log.txt`, stops at the first that fails, and writes
the exit record `exit.json` atomically (temporary file + `os.replace`) when they end.

`workbench.job_state.launch` starts it as `python -I job_runner.py JOB_DIR` in a new session,
so it outlives the Streamlit script run that started it, a page reload and the app server, and
it leads the job's process group, which `workbench.jobs.cancel_job` sends SIGTERM to.

Standard library only, on purpose: the runner only waits beside a command that loads torch
itself, and importing the `workbench` package (torch with it) would cost it about 3 s and 200 MB
for nothing. `-I` keeps this file's folder off `sys.path`, so `workbench/`'s modules cannot
shadow the standard library.
"""

from __future__ import annotations

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
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # log lines as they are printed
    code, ran = 0, 0
    with open(folder / LOG_FILE, "ab", buffering=0) as log:
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
        {"exit_code": code, "finished": time.time(), "cancelled": cancelled, "commands_run": ran},
    )
    return code


if __name__ == "__main__":
    sys.exit(0 if run(Path(sys.argv[1])) == 0 else 1)
