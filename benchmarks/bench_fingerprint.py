"""Plan-time weight fingerprinting with and without the fingerprint cache.

    python benchmarks/bench_fingerprint.py [--files 20] [--mb 50] [--reps 3]

A batch plan fingerprints every checkpoint of a series (`workbench.batch.checkpoints
.resolve_checkpoints` calls `hash_files` once per checkpoint). This writes `--files` checkpoint
files of `--mb` MB of random bytes into a temporary folder and times one plan's worth of
fingerprints three ways: without the cache (`cache=False`, what every plan cost before), with a
cold cache (a fresh database: every file read, hashed and stored), and with a warm cache (every
value found: no byte read). Prints one Markdown table; the ratio is cold / warm.

"Cold" here means a cold fingerprint cache, not a cold page cache: the files were just written,
so the OS serves them from memory. On a real 1B-model series read from disk, the uncached and
cold rows are slower still (disk bandwidth), and the warm row is unchanged.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from workbench.models import fingerprints


def write_checkpoints(folder: Path, files: int, mb: int) -> list[Path]:
    """`files` files of `mb` MB of random bytes (written in 4 MiB blocks)."""
    paths = []
    for i in range(files):
        path = folder / f"step{i * 1000}" / "model.safetensors"
        path.parent.mkdir(parents=True)
        with open(path, "wb") as fh:
            left = mb * 1_000_000
            while left:
                block = min(left, 1 << 22)
                fh.write(os.urandom(block))
                left -= block
        paths.append(path)
    return paths


def plan(paths: list[Path], cache: bool) -> float:
    """Seconds to fingerprint every checkpoint once, one `hash_files` call each."""
    started = time.perf_counter()
    for path in paths:
        fingerprints.hash_files([path], cache=cache)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-fingerprint-") as tmp:
        root = Path(tmp)
        paths = write_checkpoints(root / "series", args.files, args.mb)
        plan(paths, cache=False)  # warm-up: the files into the page cache
        uncached, cold, warm = [], [], []
        for rep in range(args.reps):
            uncached.append(plan(paths, cache=False))
            os.environ[fingerprints.CACHE_ENV] = str(root / f"cache{rep}")  # a fresh database
            cold.append(plan(paths, cache=True))
            warm.append(plan(paths, cache=True))
            values = [fingerprints.hash_files([p], cache=False) for p in paths[:2]]
            assert values == [fingerprints.hash_files([p]) for p in paths[:2]], "cache disagrees"
    u, c, w = (statistics.median(x) for x in (uncached, cold, warm))
    total_mb = args.files * args.mb
    print(
        f"`python benchmarks/bench_fingerprint.py --files {args.files} --mb {args.mb} --reps "
        f"{args.reps}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; median of {args.reps}; 1-min load average {load:.2f} "
        f"before.\n"
    )
    print(f"| plan of {args.files} checkpoints x {args.mb} MB ({total_mb} MB) | wall | MB/s |")
    print("|---|---|---|")
    print(f"| no cache (`cache=False`, as before) | {u:.3f} s | {total_mb / u:.0f} |")
    print(f"| cold cache (read, hash, store) | {c:.3f} s | {total_mb / c:.0f} |")
    print(f"| warm cache (lookup only) | {w * 1000:.1f} ms | |")
    print(f"\ncold / warm: **{c / w:.0f}x**; cold / no cache: {c / u:.3f}")


if __name__ == "__main__":
    main()
