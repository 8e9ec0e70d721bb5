"""Li et al. (2018)'s width invariance of the objective-landscape intrinsic dimension, as a check.

    python benchmarks/bench_width_invariance.py            # 3 widths x 3 seeds, fine d grid
    python benchmarks/bench_width_invariance.py --quick    # 2 seeds, coarse grid (smoke run)

Li, Farkhoor, Liu & Yosinski, "Measuring the Intrinsic Dimension of Objective Landscapes" (ICLR
2018), section 3 / Fig. 4: for fully connected MNIST networks, d_int90 stays about the same
(~750) while the parameter count D changes by more than 20x across widths and depths. Here: the
zoo's digits MLP (8x8 digits, 64 -> W -> W -> 10) at hidden widths W = 32, 64, 128 (D about 3.5k,
9k, 26k), trained in Fastfood subspaces with the CLI's default settings (`analyses.landscape.sweep
.TrainConfig()`: 30 epochs, Adam, lr 0.02; baseline = mean direct-training test accuracy), three
seeds per d. Reported per width: D, the baseline, d_int90 of the seed-mean curve (the CLI's
number), and the spread: each seed's own d_int90 (the first d where that seed passes 0.9 x the
baseline). Whatever it shows is printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WIDTHS = (32, 64, 128)
FINE_DIMS = (25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 800)
QUICK_DIMS = (50, 100, 200, 400)


def seed_d_int90(frame, baseline: float) -> dict[int, int | None]:
    """Each seed's own d_int90: the first d whose test accuracy for that seed is > 0.9 x
    `baseline` (None when no d of the grid reaches it). `frame`: the sweep's long result frame."""
    from analyses.landscape.sweep import d_int

    runs = frame[(frame.metric == "test_accuracy") & (frame.projection != "direct")]
    return {
        int(seed): d_int(group.set_index("d")["value"], baseline)
        for seed, group in runs.groupby("seed")
    }


def measure(width: int, dims: tuple[int, ...], seeds: int) -> dict:
    """One width's sweep with the CLI's defaults: D, baseline, d_int90 (seed mean) and per seed."""
    from analyses.landscape.sweep import TrainConfig, intrinsic_dimension
    from analyses.landscape.tasks import zoo_model

    factory, task = zoo_model(f"digits-mlp-w{width}")
    t0 = time.perf_counter()
    result = intrinsic_dimension(
        factory, task, dims, seeds=range(seeds), config=TrainConfig(), device="cpu", progress=False
    )
    head = result.headline
    per_seed = seed_d_int90(result.frame, head["baseline"])
    return {
        "width": width,
        "D": head["D"],
        "baseline": head["baseline"],
        "d_int90": head["d_int90"],
        "per_seed": per_seed,
        "mean_by_d": head["mean_by_d"],
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 4 dims")
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args()
    dims, seeds = (QUICK_DIMS, 2) if args.quick else (FINE_DIMS, 3)
    rows = [measure(w, dims, seeds) for w in WIDTHS]
    print(
        f"bench_width_invariance ({'quick' if args.quick else 'full'}) "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {platform.machine()}; "
        f"{seeds} seeds, d in {list(dims)}; {sum(r['seconds'] for r in rows):.0f} s"
    )
    print()
    print(
        "| hidden width W | D | baseline (direct) | d_int90 (seed mean) | d_int90 per seed | d_int90 / D |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        per = ", ".join("-" if v is None else str(v) for v in r["per_seed"].values())
        ratio = f"{r['d_int90'] / r['D']:.3f}" if r["d_int90"] else "-"
        print(
            f"| {r['width']} | {r['D']:,} | {r['baseline']:.3f} | {r['d_int90']} | {per} | {ratio} |"
        )
    found = [r["d_int90"] for r in rows if r["d_int90"]]
    if len(found) == len(rows):
        span_d = max(found) / min(found)
        span_D = rows[-1]["D"] / rows[0]["D"]
        print(f"\nD grows {span_D:.1f}x across the widths; d_int90 {span_d:.2f}x (max / min).")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, default=str, indent=1))


if __name__ == "__main__":
    main()
