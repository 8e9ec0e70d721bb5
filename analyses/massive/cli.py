"""`workbench massive track`: follow massive activations over a checkpoint series and ablate them
at its last checkpoint, writing the files the app's Massive page reads (`python -m
analyses.massive.track` is an alias)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from workbench.errors import InputError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "massive",
        help="massive activations over a checkpoint series",
        description="Massive activations on a live model: track them over a checkpoint series "
        "and ablate them at its last checkpoint.",
    )
    sub = p.add_subparsers(dest="massive_command", required=True, metavar="ACTION")
    t = sub.add_parser(
        "track",
        help="track a series and ablate at its last checkpoint into --out",
        description="Capture the residual stream after every block of each checkpoint on a "
        "fixed batch of texts, run the massive-activation detector per layer, ablate the "
        "massive entries at --site of the last checkpoint against random entries, and write "
        "trajectory.parquet, ablation.parquet and entries.parquet into --out.",
    )
    t.add_argument(
        "series",
        help="zoo name (toy-lm, fsm-lm), a folder of step<N>/ checkpoints, or a hub repository "
        "whose step<N> revisions are in the Hugging Face cache (EleutherAI/pythia-160m)",
    )
    t.add_argument("--out", required=True, help="output folder (e.g. <runs>/massive/toy-lm)")
    t.add_argument(
        "--dataset", help="texts to track on (default: the zoo model's dataset, else 'text')"
    )
    t.add_argument("--n-examples", type=int, default=16, help="texts in the fixed batch")
    t.add_argument("--site", default="blocks.1.hook_resid_post", help="the site to ablate at")
    t.add_argument("--steps", help="checkpoints, comma separated: steps, first, last (default all)")
    t.add_argument("--n-draws", type=int, default=5, help="random-entry control draws")
    t.add_argument(
        "--zoo-root", help="zoo cache (default $WORKBENCH_ZOO or ~/.cache/workbench/zoo)"
    )
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(run=cmd_track)


def cmd_track(args: argparse.Namespace) -> int:
    import pandas as pd

    from analyses.massive.track import JOB_FILES, finding_lines, findings, run_job
    from workbench import zoo
    from workbench.analysis.checkpoints import as_series
    from workbench.data import load_dataset

    if args.n_examples < 1:
        raise InputError(f"--n-examples must be at least 1, got {args.n_examples}")
    series = as_series(args.series, args.zoo_root)
    is_zoo = args.series in zoo.recipes() and not Path(args.series).exists()
    dataset = args.dataset or (zoo.get_recipe(args.series).dataset if is_zoo else "text")
    texts = [e.text for e in load_dataset(dataset, args.n_examples)]
    steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else None
    folder = run_job(series, texts, args.out, site=args.site, steps=steps, n_draws=args.n_draws)
    found = findings(
        pd.read_parquet(folder / "trajectory.parquet"), pd.read_parquet(folder / "ablation.parquet")
    )
    if args.json:
        payload = {"out": str(folder), "files": list(JOB_FILES), "dataset": dataset}
        print(json.dumps({**payload, **found}))
    else:
        print("\n".join(finding_lines(found, args.site)))
        print(f"wrote {', '.join(JOB_FILES)} into {folder}")
    return 0
