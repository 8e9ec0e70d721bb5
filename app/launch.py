"""Start the Streamlit app bound to 127.0.0.1 (unless told otherwise) over one runs directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from workbench.errors import InputError
from workbench_app.services.runsdir import RUNS_ENV
from workbench_app.services.uploads import MAX_UPLOAD_MB


def app_home() -> Path:
    """Path of the app's `Home.py`, beside this module (installed as `workbench_app`, or the
    checkout's `app/`)."""
    home = Path(__file__).resolve().with_name("Home.py")
    if not home.is_file():
        raise InputError("the web app's Home.py is not installed; reinstall the workbench")
    return home


def streamlit_command(host: str, port: int, runs: Path) -> list[str]:
    """The `streamlit run` command line; static file serving stays off (the app only reads what
    lies inside `runs`); the server's per-file upload cap (MiB) is the Upload page's largest
    limit (`workbench_app.services.uploads`), which checks each kind's own limit again."""
    if not 0 < port < 65536:
        raise InputError(f"--port must be in 1..65535, got {port}")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_home()),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.enableStaticServing",
        "false",
        "--server.maxUploadSize",
        str(MAX_UPLOAD_MB),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
    ]


def launch_app(host: str, port: int, runs: Path, zoo_root: Path | None = None) -> int:
    runs = runs.resolve()
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, RUNS_ENV: str(runs)}
    if zoo_root is not None:
        from workbench.zoo import ZOO_ENV

        env[ZOO_ENV] = str(zoo_root.resolve())
    command = streamlit_command(host, port, runs)
    # Replace this process with streamlit, so that signals (SIGTERM from a supervisor, Ctrl-C)
    # reach the server itself and no orphan is left behind.
    os.execve(command[0], command, env)
    return 0  # not reached
