"""How fast the `workbench` command answers when it has no model to run: `--help`, `zoo list`,
an argument error, each against a bare Python start (`python -c pass`) and `python -c "import
torch"` (what every call cost while `import workbench` imported torch).

    python benchmarks/bench_cli_start.py [--reps N]

Prints one Markdown table; the issue's target is under 0.5 s of wall time for each command.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5


def wall(argv: list[str], reps: int) -> float:
    """Median wall time (s) of `reps` runs of `argv` after one warm-up (file cache)."""
    subprocess.run(argv, capture_output=True, check=False)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    script = shutil.which("workbench") or str(Path(sys.executable).with_name("workbench"))
    empty_zoo = tempfile.mkdtemp(prefix="zoo-")
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"], None),
        ('python -c "import torch"', [sys.executable, "-c", "import torch"], None),
        ("workbench --help", [script, "--help"], TARGET_S),
        ("workbench zoo list", [script, "zoo", "list", "--root", empty_zoo], TARGET_S),
        ("workbench capture --model (argument error)", [script, "capture", "--model"], TARGET_S),
        ("workbench sae train --help", [script, "sae", "train", "--help"], TARGET_S),
    ]
    load = os.getloadavg()[0]
    print(
        f"`python benchmarks/bench_cli_start.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; median of {args.reps} runs after a warm-up; "
        f"1-min load average {load:.1f} before.\n"
    )
    print("| command | wall time | target | met |")
    print("|---|---|---|---|")
    for label, argv, target in rows:
        seconds = wall(argv, args.reps)
        met = "" if target is None else ("yes" if seconds < target else "**NO**")
        shown = "info" if target is None else f"< {target} s"
        print(f"| `{label}` | {seconds:.3f} s | {shown} | {met} |")


if __name__ == "__main__":
    main()
