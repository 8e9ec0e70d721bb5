"""Similarity benchmarks: our SVCCA/CCA against the paper's reference algorithm, and the all-pairs
layer map against the naive pairwise loop.

Run from the repository root::

    python benchmarks/bench_similarity.py             # n=10k, d=512; MiniLM 6 layers x 20k tokens
    python benchmarks/bench_similarity.py --quick     # smoke sizes (< 1 min)
    python benchmarks/bench_similarity.py --threads 1 # pin BLAS threads (a shared, busy machine)
    python benchmarks/bench_similarity.py --only cca  # one part (repeatable: cca, svcca, map)

1. Reference CCA, written here from the description of google/svcca `cca_core.get_cca_similarity`
   (METHODS.md 2.1; no code copied): layout (neurons, datapoints); `np.cov` of the stacked
   layers (ddof 1); each block rescaled by the max |entry| of its layer's covariance; epsilon
   ridge; `pinv`; matrix square root by `eigh`; SVD of Sxx^-1/2 Sxy Syy^-1/2; correlations |s|.
   Reference SVCCA: SVD of each centred layer, keep the top directions explaining 99% of the
   variance (sum s^2, our default reading), `svacts = diag(s_k) V_k`, then the reference CCA.
   Ours: `analyses.similarity.compare.compare(a, b, "cca" | "svcca")`. SVCCA: thin SVD of each
   centred layer, SVD of U_a^T U_b. Plain CCA: the covariance route (Cholesky whitening of the
   column-scaled covariances) when both layers are well conditioned, else the SVD route; the
   route that ran is printed. Same correlations (max |difference|) and the time ratio.
2. The all-pairs SVCCA map of MiniLM's 6 `blocks.*.hook_resid_post` (d=384) on the first 20,000
   tokens of the offline `text` dataset: `layer_map` (each layer decomposed once, 21 pairs from 6
   SVDs) vs a loop of `compare` over the 21 pairs i <= j (two SVDs per pair). Layers are read
   into memory first for both; the matrices are checked equal.

Prints one markdown section (timings: medians of interleaved repetitions), ready for RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
OUT = HERE / "out" / "similarity"


# ------------------------------------------------------------------ the reference algorithm
def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


def reference_cca(acts1: np.ndarray, acts2: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
    """Canonical correlations, (neurons, datapoints) layout, covariance route (module doc)."""
    n1 = acts1.shape[0]
    cov = np.cov(acts1, acts2)
    sxx, sxy, syy = cov[:n1, :n1], cov[:n1, n1:], cov[n1:, n1:]
    xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    sxx = sxx + epsilon * np.eye(n1)
    syy = syy + epsilon * np.eye(len(syy))
    inv_xx = _sqrt_psd(np.linalg.pinv(sxx))
    inv_yy = _sqrt_psd(np.linalg.pinv(syy))
    s = np.linalg.svd(inv_xx @ sxy @ inv_yy, compute_uv=False)
    return np.abs(s)


def reference_svcca(acts1: np.ndarray, acts2: np.ndarray, variance: float = 0.99) -> np.ndarray:
    """SVD-reduce each centred layer to `variance` of its variance, then the reference CCA."""
    reduced = []
    for acts in (acts1, acts2):
        centred = acts - acts.mean(axis=1, keepdims=True)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        share = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.searchsorted(share, variance - 1e-12) + 1)
        reduced.append(s[:k, None] * vt[:k])
    return reference_cca(*reduced)


# ------------------------------------------------------------------------------ helpers
def interleaved(fns: dict, reps: int) -> dict[str, float]:
    """Median seconds of each function, run round robin with the order rotated per round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def planted_pair(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) layers with decaying spectra (condition number ~100) sharing half their signal."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(1.0, 0.01, d)
    shared = rng.normal(size=(n, d))
    a = (shared * scales) @ np.linalg.qr(rng.normal(size=(d, d)))[0]
    b = (
        (0.7 * shared + 0.7 * rng.normal(size=(n, d)))
        * scales
        @ np.linalg.qr(rng.normal(size=(d, d)))[0]
    )
    return a + 1.0, b - 2.0


def minilm_layers(n_rows: int) -> dict[str, np.ndarray]:
    """The first `n_rows` tokens of MiniLM's 6 resid_post sites on the `text` dataset."""
    from workbench import load_model
    from workbench.data import load_dataset
    from workbench.store.capture import capture_to_store

    n_examples = max(8, int(n_rows / 70) + 20)  # ~75 tokens per text
    while True:
        store = capture_to_store(
            load_model("minilm", device="cpu"),
            "blocks.*.hook_resid_post",
            load_dataset("text", n_examples),
            OUT / f"minilm-text-{n_examples}",
            dataset="text",
            progress=False,
        )
        if store.n_rows >= n_rows:
            return {site: store.read(site, slice(0, n_rows)) for site in store.sites}
        n_examples = int(n_examples * 1.3)


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="BLAS threads (0: default)")
    parser.add_argument(
        "--only",
        action="append",
        choices=("cca", "svcca", "map"),
        help="run only this part (repeatable; default: all three)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    from analyses.similarity.compare import compare

    n, d, reps = (2000, 128, 3) if args.quick else (10_000, 512, 5)
    n_tokens = 3000 if args.quick else 20_000
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    a, b = planted_pair(n, d)
    parts = set(args.only or ("cca", "svcca", "map"))
    rows = []
    for measure, ref in (("cca", reference_cca), ("svcca", reference_svcca)):
        if measure not in parts:
            continue
        result = compare(a, b, measure)
        ours = result.correlations
        assert ours is not None
        theirs = ref(a.T, b.T)
        diff = float(np.max(np.abs(ours - theirs[: len(ours)])))
        t = interleaved(
            {"ours": lambda m=measure: compare(a, b, m), "ref": lambda f=ref: f(a.T, b.T)}, reps
        )
        rows.append(
            (
                f"{measure.upper()} n={n:,} d={d} (ours / reference)",
                t["ours"],
                t["ref"],
                f"{len(ours)} correlations, max abs diff {diff:.1e}"
                + (f"; route {result.details['method']}" if measure == "cca" else ""),
            )
        )
    if "map" in parts:
        rows.append(_map_row(n_tokens, reps))
    elapsed = time.perf_counter() - started

    import torch

    threads = args.threads or "default"
    only = "".join(f" --only {p}" for p in args.only or ())
    print(f"## bench_similarity ({'quick' if args.quick else 'full'})\n")
    print(
        f"`python benchmarks/bench_similarity.py{' --quick' if args.quick else ''}"
        f"{f' --threads {args.threads}' if args.threads else ''}{only}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores, BLAS threads {threads}, numpy {np.__version__}, torch "
        f"{torch.__version__}; medians of interleaved repetitions; run took {elapsed:.0f} s; "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.\n"
    )
    print("| Benchmark | Ours | Baseline | Ratio | Notes |")
    print("|---|---|---|---|---|")
    for name, ours_s, base_s, note in rows:
        print(f"| {name} | {ours_s:.3f} s | {base_s:.3f} s | {ours_s / base_s:.3f} | {note} |")
    return 0


def _map_row(n_tokens: int, reps: int) -> tuple[str, float, float, str]:
    """The all-pairs SVCCA map of MiniLM's layers against the naive pairwise loop."""
    from analyses.similarity.compare import compare
    from analyses.similarity.maps import layer_map

    layers = minilm_layers(n_tokens)
    names = list(layers)

    def naive():
        out = np.eye(len(names))
        for i, x in enumerate(names):
            for j in range(i, len(names)):
                out[i, j] = out[j, i] = compare(layers[x], layers[names[j]], "svcca").similarity
        return out

    fast = np.array(layer_map(layers).headline["matrix"])
    diff_map = float(np.max(np.abs(fast - naive())))
    t = interleaved({"map": lambda: layer_map(layers), "naive": naive}, max(1, reps // 2))
    width = layers[names[0]].shape[1]
    return (
        f"SVCCA layer map, MiniLM {len(names)} layers x {n_tokens:,} tokens, d={width} "
        "(map / naive pairwise loop)",
        t["map"],
        t["naive"],
        f"21 pairs; max abs diff {diff_map:.1e}",
    )


if __name__ == "__main__":
    sys.exit(main())
