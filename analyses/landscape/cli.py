"""`workbench landscape-dim`: the intrinsic dimension of a zoo model's objective landscape
(Li, Farkhoor, Liu & Yosinski 2018), by training it in random subspaces of a sweep of sizes d.
`workbench intrinsic-dim` is the same verb under its old name (the intrinsic dimension of
representations is `workbench analyze twonn|mle|pca-dim`).

    workbench landscape-dim --model digits-mlp --dims 10,50,100,200,400 --projection fastfood \\
        --seeds 1 --epochs 30 --out runs/intrinsic-dim/digits-mlp [--json] [--device auto]

Progress goes to stderr; the result (parquet + JSON) is saved under --out, where the app's
Landscape page finds it; stdout gets a table of the mean score per d, or one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "landscape-dim",
        aliases=["intrinsic-dim"],
        help="intrinsic dimension of a model's objective landscape (subspace training)",
        description="Train MODEL in random d-dimensional subspaces of its parameters for each d "
        "in --dims (theta = theta_0 + P theta_d; Li et al. 2018) and report d_int90, the first d "
        "whose mean score over seeds is strictly greater than 0.90 x the baseline.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="zoo model: digits-mlp, digits-cnn, or digits-mlp-w<W> (hidden width W)",
    )
    p.add_argument("--dims", required=True, help="subspace dimensions, comma separated: 10,50,100")
    p.add_argument(
        "--projection",
        default="fastfood",
        help="fastfood (O(D) memory, default), dense, sparse, identity (d = D only)",
    )
    p.add_argument("--seeds", type=int, default=1, help="runs per d, with seeds 0..N-1 (default 1)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs per run")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.02, help="Adam learning rate of theta_d")
    p.add_argument(
        "--direct-lr", type=float, default=0.003, help="Adam learning rate of direct training"
    )
    p.add_argument(
        "--baseline",
        default="direct",
        choices=["direct", "global"],
        help="direct: mean direct-training accuracy (default); global: 1.0",
    )
    p.add_argument(
        "--out",
        default=None,
        help="result directory (default runs/intrinsic-dim/MODEL-PROJECTION)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print one JSON object (headline)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run)


def parse_dims(text: str) -> list[int]:
    """'10,50,100' -> [10, 50, 100]; every entry a positive int."""
    dims = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = int(item)
        except ValueError:
            raise InputError(f"--dims takes comma-separated positive ints, got {item!r}") from None
        if value <= 0:
            raise InputError(f"--dims entries must be positive, got {value}")
        dims.append(value)
    return dims


def run(args: argparse.Namespace) -> int:
    from analyses.landscape.sweep import TrainConfig, intrinsic_dimension
    from analyses.landscape.tasks import zoo_model

    dims = parse_dims(args.dims)
    if args.seeds <= 0:
        raise InputError(f"--seeds must be positive, got {args.seeds}")
    factory, task = zoo_model(args.model)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, direct_lr=args.direct_lr
    )
    out = args.out or f"runs/intrinsic-dim/{args.model}-{args.projection}"
    result = intrinsic_dimension(
        factory,
        task,
        dims,
        projection=args.projection,
        seeds=range(args.seeds),
        config=config,
        baseline=args.baseline,
        device=args.device,
        model_name=args.model,
        out=out,
        progress=not args.no_progress,
    )
    head = result.headline
    if args.json:
        print(json.dumps({**result.to_json(), "out": str(out)}, default=str))
        return 0
    print(f"{'d':>8}  mean {head['metric']}")
    for d, mean in head["mean_by_d"].items():
        print(f"{d:>8}  {mean:.4f}")
    print(
        f"D = {head['D']:,}; baseline ({head['baseline_kind']}) = {head['baseline']:.4f}; "
        f"d_int90 = {head['d_int90']} (first d with mean > {head['threshold90']:.4f}); "
        f"saved to {out}",
        file=sys.stdout,
    )
    return 0
