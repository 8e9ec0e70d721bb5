"""`workbench neural-collapse track MODEL`: NC1-NC4 of a zoo classifier at every epoch
checkpoint (`over_checkpoints`), on the training split by default as Papyan, Han & Donoho
measure, with the terminal phase summarised (`terminal.terminal_phase`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    from analyses.neural_collapse.sites import PENULTIMATE

    defaults = "; ".join(f"{name}: {','.join(sites)}" for name, sites in PENULTIMATE.items())
    p = subparsers.add_parser(
        "neural-collapse",
        help="neural collapse (NC1-NC4) over a zoo classifier's checkpoints",
        description="Neural collapse over training (Papyan, Han & Donoho 2020). For arrays or "
        "a store use `workbench analyze neural-collapse`.",
    )
    sub = p.add_subparsers(dest="collapse_command", required=True, metavar="ACTION")
    t = sub.add_parser(
        "track",
        help="NC1-NC4 at every checkpoint, and the terminal phase in numbers",
        description="Run the model's images of --split through every checkpoint, measure "
        "NC1-NC4 at each of --sites (the last paired with the classifier), and print the "
        "metrics at the last site per checkpoint, then the terminal phase: the first "
        "checkpoint with zero error on the rows measured and how far each metric fell from "
        "there. The paper measures on the training split (the default); on held-out rows the "
        "within-class spread does not collapse the same way.",
    )
    t.add_argument("model", choices=list(PENULTIMATE), help="zoo classifier")
    t.add_argument(
        "--split",
        default="train",
        choices=["train", "test", "all"],
        help="images to measure on (default train, as the paper)",
    )
    t.add_argument(
        "--sites",
        help="comma separated, shallow to deep, the last read with the classifier "
        f"(default: {defaults})",
    )
    t.add_argument(
        "--steps", help="checkpoints, comma separated: epochs, first, last (default all)"
    )
    t.add_argument(
        "--zoo-root", help="zoo cache (default $WORKBENCH_ZOO or ~/.cache/workbench/zoo)"
    )
    t.add_argument("--out", help="save the result (parquet + JSON) to this directory")
    t.add_argument("--json", action="store_true", help="print one JSON object: the summary")
    t.set_defaults(run=cmd_track)


def cmd_track(args: argparse.Namespace) -> int:
    from analyses.neural_collapse.analyses import over_checkpoints
    from analyses.neural_collapse.terminal import SIGNATURES, finding_lines, terminal_phase

    sites = tuple(s.strip() for s in args.sites.split(",") if s.strip()) if args.sites else None
    steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else None
    result = over_checkpoints(
        args.model, args.split, sites=sites, steps=steps, zoo_root=args.zoo_root
    )
    summary = terminal_phase(result.frame)
    if args.out:
        result.save(Path(args.out))
    if args.json:
        payload = {"model": args.model, "split": args.split, **summary, "out": args.out}
        print(json.dumps(payload))
        return 0
    rows = result.frame[result.frame.site == summary["site"]]
    wide = rows.pivot_table(index="checkpoint_step", columns="metric", values="value")
    columns = [c for c in (*SIGNATURES, "net_accuracy") if c in wide]
    table = wide[columns].rename_axis("epoch").reset_index()
    print(f"# {args.model}, {args.split} split, site {summary['site']}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n".join(finding_lines(summary)))
    if args.out:
        print(f"saved to {args.out}")
    return 0
