"""Massive-activation detection: the streaming selection-based detector vs a full-sort
implementation (Sun et al.'s `main_llm.py --exp2`: sort |h| flattened for the top values,
median per hidden state), and memory against the number of rows.

Run from the repository root::

    python benchmarks/bench_massive.py            # N up to 131072 rows x 384 (~3 min)
    python benchmarks/bench_massive.py --quick    # smoke (< 30 s)

Prints a markdown table. Rows:
- time: `MassiveDetector` over 8192-row batches (per-row lower median by `np.partition`, top-k
  by `np.argpartition` on the rows of the k largest row maxima, both criteria, per-sequence
  statistics) vs the full sort (`np.sort` of each row for the median, `np.argsort` of all N*d
  values for the top-k), same outputs checked equal; torch.topk + torch.kthvalue (O(N d),
  METHODS.md 8) as a second reference;
- memory: peak traced allocations (tracemalloc sees numpy's buffers) of the detector streaming
  N rows generated batch by batch, and of the full sort holding the N rows.
Timings: median of `reps` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.massive.detect import MassiveDetector  # noqa: E402

D, SEQ, K, BATCH = 384, 64, 16, 8192


def make(n: int, seed: int = 0) -> np.ndarray:
    """(n, D) float32 N(0,1) with a planted 600 at position 0, dim 17 of every sequence."""
    x = np.random.default_rng(seed).standard_normal((n, D), dtype=np.float32)
    x[::SEQ, 17] = 600.0
    return x


def ours(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    det = MassiveDetector(D, topk=K)
    example = np.arange(len(x)) // SEQ
    for start in range(0, len(x), BATCH):
        rows = np.arange(start, min(len(x), start + BATCH))
        det.update(x[rows[0] : rows[-1] + 1], rows, example[rows])
    s = det.summary()
    return np.array([e["abs"] for e in s["top_values"]]), np.array([s["max_row_ratio"]])


def full_sort(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.abs(x)
    med = np.sort(a, axis=1)[:, (D - 1) // 2]
    flat = a.ravel()
    top = flat[np.argsort(flat, kind="stable")[::-1][:K]].astype(np.float64)
    return top, np.array([float((a.max(1) / med).max())])


def torch_select(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    a = torch.from_numpy(x).abs()
    med = torch.kthvalue(a, (D - 1) // 2 + 1, dim=1).values
    top = torch.topk(a.flatten(), K).values.double().numpy()
    return top, np.array([float((a.max(1).values / med).max())])


def timed(fn, x, reps: int) -> float:
    fn(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def streamed_peak(n: int) -> int:
    """Peak traced bytes of the detector over n rows generated batch by batch."""
    det = MassiveDetector(D, topk=K)
    tracemalloc.start()
    for start in range(0, n, BATCH):
        m = min(BATCH, n - start)
        batch = make(m, seed=start)
        rows = np.arange(start, start + m)
        det.update(batch, rows, rows // SEQ)
        del batch
    det.summary()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def sort_peak(n: int) -> int:
    tracemalloc.start()
    x = make(n)
    full_sort(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [8192, 32768] if args.quick else [16384, 65536, 131072]
    reps = 2 if args.quick else 3
    print(
        f"| N rows x {D} | ours (streaming) | full sort | ratio sort/ours | torch topk+kthvalue |"
    )
    print("|---|---|---|---|---|")
    for n in sizes:
        x = make(n)
        a, b, c = ours(x), full_sort(x), torch_select(x)
        assert np.allclose(a[0], b[0]) and np.allclose(a[0], c[0]), "top values differ"
        assert np.allclose(a[1], b[1], rtol=1e-5) and np.allclose(a[1], c[1], rtol=1e-5)
        t_ours, t_sort, t_torch = (timed(f, x, reps) for f in (ours, full_sort, torch_select))
        print(
            f"| {n} | {t_ours:.3f} s | {t_sort:.3f} s | {t_sort / t_ours:.2f}x | {t_torch:.3f} s |"
        )
        del x
    print()
    print("| N rows x 384 | detector peak, streamed | full sort peak, in memory |")
    print("|---|---|---|")
    for n in sizes:
        print(f"| {n} | {streamed_peak(n) / 2**20:.1f} MiB | {sort_peak(n) / 2**20:.1f} MiB |")


if __name__ == "__main__":
    main()
