"""Small helpers the benchmark scripts share: /proc memory fields and the plain truncated forward.

Each script puts its own folder on `sys.path` (`sys.path.insert(0, str(Path(__file__).parent))`)
before `from benchutil import ...`, so it works run as a script and loaded by a test.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np


def proc_status(field: str) -> int:
    """A `/proc/self/status` memory field (`VmRSS`, `RssAnon`, `VmHWM`, ...) in bytes; 0 where
    the field or the file is missing (not Linux)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class _Stop(Exception):  # noqa: N818 - control flow
    pass


def _raise_stop(module, args, output):
    raise _Stop


def forward_to(handle, batch, site: str) -> None:
    """The plain forward pass of `handle` on `batch`, ended right after `site` fires (a bare
    raising hook, nothing kept): the baseline capture is compared with."""
    hook = handle.site_modules[site].register_forward_hook(_raise_stop)
    try:
        handle.run(batch)
    except _Stop:
        pass
    finally:
        hook.remove()


def run_result_child(kind: str, cmd: list[str], env: dict[str, str]) -> dict:
    """Run a benchmark child process and return the JSON of its last `RESULT {...}` stdout line;
    a child that fails or prints none raises with the tail of its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} child failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def write_store(
    path: Path,
    site: str,
    n_rows: int,
    rows: Callable[[int], np.ndarray],
    source: str,
    chunk: int = 32768,
) -> None:
    """A float32 activation store at `path` with `n_rows` rows of `site`, written `chunk` rows at
    a time from `rows(n) -> (n, d_in)`; kept when a complete one is already there. `source` is
    its model and dataset name. Needs the project root on `sys.path`."""
    from workbench.store import StoreWriter

    if (path / "manifest.json").is_file():
        return
    writer = StoreWriter(
        path,
        {"model": source, "dataset": source, "sites": [site], "dtype": "float32"},
        overwrite=True,
    )
    for start in range(0, n_rows, chunk):
        n = min(chunk, n_rows - start)
        writer.append({site: rows(n)}, None, np.arange(start, start + n), None)
    writer.finalize()
