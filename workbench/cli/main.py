"""`workbench` entry point: argument parsing and error reporting; the verbs live in
`workbench.cli.commands`."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import entry_points

from workbench.errors import WorkbenchError

# Verbs that analysis packages add (`workbench sae`, `workbench steer`, ...): the entry-point
# group names `add_parser(subparsers)` functions, each of which adds one subcommand and sets
# `run=<function(args) -> int>` as its default (imports stay lazy inside). The core never
# imports an analysis package by name.
COMMAND_GROUP = "workbench.commands"


def model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        help="model dtype: auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run a hub model's own Python code (off by default)",
    )
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="let a hub name be downloaded (offline by default)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Interpretability workbench: capture, store and analyse activations.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "sites",
        help="list a model's sites",
        description="List the sites (hook names or module paths) of MODEL.",
    )
    p.add_argument(
        "model",
        help="short name (minilm), local folder, DIR@STEP, native config .json, or hub name",
    )
    p.add_argument(
        "--filter",
        default=None,
        help="only sites matching this pattern, e.g. 'blocks.*.hook_resid_post'",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list")
    model_args(p)

    p = sub.add_parser(
        "capture",
        help="capture activations into a store",
        description="Run texts or a dataset through MODEL and store activations at SITES.",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--sites", required=True, help="names or patterns, comma separated")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text to capture (repeat for several)")
    source.add_argument(
        "--dataset", help="a registered dataset name (see `workbench capture --help`)"
    )
    p.add_argument(
        "--n-examples", type=int, default=None, help="use the first N examples of the dataset"
    )
    p.add_argument("--out", required=True, help="store directory")
    p.add_argument(
        "--positions",
        default="all",
        help="all, last, an int, or START:STOP[:STEP] over the unpadded sequence",
    )
    p.add_argument("--store-dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128, help="truncate texts to this many tokens")
    p.add_argument(
        "--overwrite", action="store_true", help="replace a store that has a different spec"
    )
    p.add_argument("--no-progress", action="store_true")
    model_args(p)

    p = sub.add_parser(
        "info",
        help="show a store's manifest and statistics",
        description="Describe the store at STORE.",
    )
    p.add_argument("store")
    p.add_argument("--verify", action="store_true", help="re-hash every shard against the manifest")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "analyze",
        help="run an analysis on a store or on arrays",
        description="Run analysis NAME on a store site (--store/--site) or on arrays (--acts ...).",
    )
    p.add_argument("name", nargs="?", help="analysis name (omit to list installed analyses)")
    p.add_argument("--store")
    p.add_argument("--site", help="site in the store (default: every site)")
    p.add_argument("--store-b", help="second store, for comparisons (default: --store)")
    p.add_argument("--site-b", help="site of the second store, for comparisons (default: --site)")
    p.add_argument("--label", help="a row or example label of the store, for label-aware analyses")
    p.add_argument("--acts", help=".npy or .safetensors file (n, d)")
    p.add_argument("--acts-b", help="second activation file, for comparisons")
    p.add_argument("--labels", help="labels file (n,)")
    p.add_argument("--weights", help="classifier weights file (classes, d)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="an analysis setting"
    )
    p.add_argument("--out", help="save the result (parquet + JSON) to this directory")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object: headline numbers and settings"
    )

    p = sub.add_parser(
        "demo",
        help="run the main job on the embedded default",
        description="Capture every layer of the real pretrained MiniLM on offline text into a store, "
        "analyse it, and print where to look.",
    )
    p.add_argument(
        "--out", default="runs/demo", help="runs directory for the demo's store and results"
    )
    p.add_argument("--n-examples", type=int, default=256, help="examples per model's dataset")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--zoo-root", help="zoo cache (default $WORKBENCH_ZOO or ~/.cache/workbench/zoo)"
    )
    p.add_argument(
        "--no-app", action="store_true", help="do not open the app at the end (headless)"
    )
    p.add_argument("--port", type=int, default=8501, help="port of the app opened at the end")

    p = sub.add_parser(
        "zoo",
        help="build or list the model zoo",
        description="Small models trained from scratch on the embedded datasets, with "
        "checkpoint series (built on demand, cached).",
    )
    zoo_sub = p.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    z = zoo_sub.add_parser("list", help="list zoo models, whether built, and their metric")
    z.add_argument("--root", help="zoo cache (default $WORKBENCH_ZOO or ~/.cache/workbench/zoo)")
    z.add_argument("--json", action="store_true")
    z = zoo_sub.add_parser("build", help="build zoo models (all when none is named)")
    z.add_argument("names", nargs="*")
    z.add_argument("--root", help="zoo cache (default $WORKBENCH_ZOO or ~/.cache/workbench/zoo)")
    z.add_argument("--force", action="store_true", help="rebuild even if cached")
    z.add_argument("--quick", action="store_true", help="tiny runs for tests (metrics will miss)")

    from workbench.batch.cli import add_parser as add_batch_parser

    add_batch_parser(sub)
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        entry.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from workbench.cli import commands

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"workbench {args.command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show_warning

    try:
        run = getattr(args, "run", None) or getattr(commands, f"cmd_{args.command}")
        return int(run(args) or 0)
    except WorkbenchError as exc:
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"workbench {args.command}: interrupted; a partial store stays incomplete and resumes on re-run",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
