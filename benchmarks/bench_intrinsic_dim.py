"""TwoNN and MLE intrinsic dimension against scikit-dimension (the installable peer).

Run from the repository root::

    python benchmarks/bench_intrinsic_dim.py            # n = 20,000, D = 384 (a few minutes)
    python benchmarks/bench_intrinsic_dim.py --quick    # n = 4,000 smoke run
    python benchmarks/bench_intrinsic_dim.py --only shared  # one part: peer, shared

scikit-dimension 0.5.0 is installed into its own virtual environment,
`benchmarks/out/venv-skdim` (created on first run; never a project dependency), and runs in a
child process on the same `.npy` file. Both sides use the same convention (TwoNN: 10% of the
largest ratios discarded, F = i/N, fit through the origin; MLE: k = 20, harmonic-mean
combination), so the estimates must agree to 1e-6 (relative). Timings are medians of `reps`
runs, the two sides alternating so that load from other jobs hits both alike; each side's time
covers the whole `fit` (neighbour search included), not the import or the data load.

Data: a curved 10-dimensional manifold of full rank in 384 dimensions,
x = sin(z A / sqrt(10)) with z ~ N(0, I_10) and A ~ N(0, 1)^(10 x 384): no shortcut through a
low-rank projection is possible, as with real activations.
Prints one table (estimates, |difference|, seconds, ratio) as Markdown.

Part `shared`: TwoNN + MLE (k = 20) on the same rows, each with its own neighbour search
(`NEIGHBOURS.enabled = False`) against one shared k = 20 search (`analyses.geometry.knn_cache`,
TwoNN first under `NEIGHBOURS.plan(20)`, as `store_curves` runs them; a fresh cache each time).
Interleaved repetitions; the estimates must be identical (1e-12 relative).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / "out" / "venv-skdim"
PEER = "scikit-dimension==0.5.0"

CHILD = r"""
import json, sys, time, warnings
import numpy as np
import skdim
x = np.load(sys.argv[1])
which = sys.argv[2]
t = time.perf_counter()
if which == "twonn":
    d = skdim.id.TwoNN().fit(x).dimension_
else:
    d = skdim.id.MLE().fit(x, n_neighbors=20, comb="mle").dimension_
print(json.dumps({"dimension": float(d), "seconds": time.perf_counter() - t}))
"""


def peer_python() -> Path:
    """The venv's python, creating the venv with scikit-dimension on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEER], check=True)
    return python


def peer(python: Path, data: Path, which: str) -> dict[str, float]:
    out = subprocess.run(
        [str(python), "-c", CHILD, str(data), which], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ours(x: np.ndarray, which: str) -> dict[str, float]:
    """One estimator's fit, its own neighbour search included (no cache: every repetition
    searches, as scikit-dimension does)."""
    from analyses.geometry.intrinsic_dim import MLE, TwoNN
    from analyses.geometry.knn_cache import NEIGHBOURS

    NEIGHBOURS.enabled = False
    try:
        t = time.perf_counter()
        est = TwoNN() if which == "twonn" else MLE(n_neighbors=20, comb="mle")
        d = est.fit(x).dimension_
        seconds = time.perf_counter() - t
    finally:
        NEIGHBOURS.enabled = True
    return {"dimension": float(d), "seconds": seconds}


def both(x: np.ndarray, share: bool) -> tuple[float, float, float]:
    """(seconds, TwoNN dimension, MLE dimension) of TwoNN then MLE (k = 20) on `x`, with one
    shared neighbour search (`share`) or one search each."""
    from analyses.geometry.intrinsic_dim import MLE, TwoNN
    from analyses.geometry.knn_cache import NEIGHBOURS

    NEIGHBOURS.clear()
    NEIGHBOURS.enabled = share
    try:
        t = time.perf_counter()
        with NEIGHBOURS.plan(20):
            d_twonn = TwoNN().fit(x).dimension_
            d_mle = MLE(n_neighbors=20, comb="mle").fit(x).dimension_
        seconds = time.perf_counter() - t
        assert NEIGHBOURS.searches == (1 if share else 2)
    finally:
        NEIGHBOURS.enabled = True
        NEIGHBOURS.clear()
    return seconds, d_twonn, d_mle


def shared_table(x: np.ndarray, reps: int) -> bool:
    """Print the shared-vs-separate table; True when the estimates are identical."""
    runs: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    for r in range(reps):
        for share in (True, False) if r % 2 == 0 else (False, True):
            runs[share].append(both(x, share))
    t_shared = statistics.median(r[0] for r in runs[True])
    t_separate = statistics.median(r[0] for r in runs[False])
    diff = max(
        abs(a - b) / abs(b) for a, b in zip(runs[True][0][1:], runs[False][0][1:], strict=True)
    )
    print(f"\nTwoNN + MLE (k = 20) on the same {len(x)} x {x.shape[1]} rows, median of {reps}")
    print("| run | TwoNN | MLE | searches | seconds | separate / shared |")
    print("|---|---|---|---|---|---|")
    for share, name, searches in ((False, "separate", 2), (True, "shared", 1)):
        _, d_t, d_m = runs[share][0]
        t = t_shared if share else t_separate
        print(f"| {name} | {d_t:.8f} | {d_m:.8f} | {searches} | {t:.2f} | {t_separate / t:.2f}x |")
    print(f"max relative difference of the estimates: {diff:.1e}")
    return diff <= 1e-12


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 4000, one repetition")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument(
        "--only", action="append", choices=("peer", "shared"), help="one part (repeatable)"
    )
    args = parser.parse_args(argv)
    parts = set(args.only or ("peer", "shared"))
    n = args.n or (4000 if args.quick else 20000)
    reps = args.reps or (1 if args.quick else 3)
    dim, latent = 384, 10
    sys.path.insert(0, str(ROOT))

    rng = np.random.default_rng(0)
    x = np.sin(rng.normal(size=(n, latent)) @ rng.normal(size=(latent, dim)) / np.sqrt(latent))
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at start", file=sys.stderr)
    ok = True
    if "shared" in parts:
        ours(x[:500], "mle")  # warm-up (imports, torch thread pool)
        ok &= shared_table(x, reps)
    if "peer" in parts:
        ok &= peer_table(x, n, dim, latent, reps)
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at the end", file=sys.stderr)
    return 0 if ok else 1


def peer_table(x: np.ndarray, n: int, dim: int, latent: int, reps: int) -> bool:
    """Print the table against scikit-dimension; True when the estimates agree to 1e-6."""
    data = HERE / "out" / f"id_data_{n}.npy"
    data.parent.mkdir(parents=True, exist_ok=True)
    np.save(data, x)
    python = peer_python()
    ours(x[:500], "mle")  # warm-up (imports, torch thread pool)

    rows = []
    for which in ("twonn", "mle"):
        mine, theirs = [], []
        for _ in range(reps):
            mine.append(ours(x, which))
            theirs.append(peer(python, data, which))
        d_ours, d_peer = mine[0]["dimension"], theirs[0]["dimension"]
        t_ours = statistics.median(r["seconds"] for r in mine)
        t_peer = statistics.median(r["seconds"] for r in theirs)
        rows.append((which, d_ours, d_peer, abs(d_ours - d_peer) / abs(d_peer), t_ours, t_peer))

    print(f"n = {n}, D = {dim}, latent dimension {latent}, median of {reps} runs")
    print(
        "| estimator | ours | scikit-dimension 0.5.0 | rel. difference | ours s | peer s | speed-up |"
    )
    print("|---|---|---|---|---|---|---|")
    ok = True
    for which, d_o, d_p, diff, t_o, t_p in rows:
        ok &= diff <= 1e-6
        print(
            f"| {which} | {d_o:.8f} | {d_p:.8f} | {diff:.1e} | {t_o:.2f} | {t_p:.2f} "
            f"| {t_p / t_o:.1f}x |"
        )
    print("estimates agree to 1e-6:", "yes" if ok else "NO")
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
