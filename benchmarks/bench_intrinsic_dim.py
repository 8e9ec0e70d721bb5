"""TwoNN and MLE intrinsic dimension against scikit-dimension (the installable peer).

Run from the repository root::

    python benchmarks/bench_intrinsic_dim.py            # n = 20,000, D = 384 (a few minutes)
    python benchmarks/bench_intrinsic_dim.py --quick    # n = 4,000 smoke run

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
"""

from __future__ import annotations

import argparse
import json
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
    from analyses.geometry.intrinsic_dim import MLE, TwoNN

    t = time.perf_counter()
    est = TwoNN() if which == "twonn" else MLE(n_neighbors=20, comb="mle")
    d = est.fit(x).dimension_
    return {"dimension": float(d), "seconds": time.perf_counter() - t}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 4000, one repetition")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.n or (4000 if args.quick else 20000)
    reps = args.reps or (1 if args.quick else 3)
    dim, latent = 384, 10
    sys.path.insert(0, str(ROOT))

    rng = np.random.default_rng(0)
    x = np.sin(rng.normal(size=(n, latent)) @ rng.normal(size=(latent, dim)) / np.sqrt(latent))
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
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
