"""`workbench` entry point: argument parsing and error reporting; the verbs live in
`workbench.cli.commands`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from workbench import console
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


def _output_args(parser: argparse.ArgumentParser, default: object) -> None:
    """`--quiet` and `--no-progress` (see `workbench.console`), on the top-level parser (default
    False) and on every verb (default SUPPRESS, so that the verb's parser keeps what the top level
    set): `workbench --quiet demo` and `workbench demo --quiet` mean the same. A verb's own
    `--no-progress` (dest `no_progress`) is kept; the console reads both."""
    options = {o for action in parser._actions for o in action.option_strings}
    if "--quiet" not in options:
        parser.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=default,
            help="print only the result (stdout) and errors (stderr): no step lines, no bar, "
            "no warning summary",
        )
    if "--no-progress" not in options:
        parser.add_argument(
            "--no-progress",
            dest="no_progress_all",
            action="store_true",
            default=default,
            help="no progress bar (there is none anyway when stderr is not a terminal)",
        )


def _verb_output_args(parser: argparse.ArgumentParser, seen: set[int]) -> None:
    """`_output_args` on every verb under `parser`, sub-verbs included (aliases once)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb in action.choices.values():
                if id(verb) not in seen:
                    seen.add(id(verb))
                    _output_args(verb, default=argparse.SUPPRESS)
                    _verb_output_args(verb, seen)


def _core_verb(name: str):
    """`run` of a core verb: `commands.cmd_<name>`, imported when the verb runs."""

    def run(args: argparse.Namespace) -> int:
        from workbench.cli import commands

        return getattr(commands, f"cmd_{name}")(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Interpretability workbench: capture, store and analyse activations.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log progress details, and show every warning as it happens",
    )
    _output_args(parser, default=False)
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
    p.add_argument(
        "--model",
        required=True,
        help="short name (minilm), zoo name, local folder, DIR@STEP, native config .json, or hub name",
    )
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
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    p.add_argument("--max-length", type=int, default=128, help="truncate texts to this many tokens")
    p.add_argument(
        "--overwrite", action="store_true", help="replace a store that has a different spec"
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (as the global flag)"
    )
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
        description="Build the model zoo, capture every zoo model and the real pretrained "
        "MiniLM (with the extra `minilm`) into stores, run the analyses and the analysis "
        "families' demo steps on them, and print a findings table and how to open the app. "
        "One line per step on stderr; the findings on stdout.",
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
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (findings, skipped steps, where) and do not open the app",
    )

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
    for name in ("sites", "capture", "info", "analyze", "demo", "zoo"):
        sub.choices[name].set_defaults(run=_core_verb(name))
    _verb_output_args(parser, set())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.configure(args)  # -v/--quiet/--no-progress; the verb runs with warnings collected
    try:
        code = int(args.run(args) or 0)  # every verb sets `run` (core verbs and entry points)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return code
    except WorkbenchError as exc:
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:
        print(
            f"workbench {args.command}: interrupted; nothing unfinished reads as complete "
            "(a partial store or result resumes or is redone on re-run)",
            file=sys.stderr,
        )
        return 130


SIGPIPE_EXIT = 128 + 13  # what a shell reports for a process killed by SIGPIPE


def _reader_went_away() -> int:
    """The reader of stdout closed the pipe (`workbench info S --json | head -n 1`): stop quietly,
    as Unix tools do. stdout is pointed at /dev/null so that the interpreter's final flush does not
    raise again; the exit status is the shell's for SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return SIGPIPE_EXIT


if __name__ == "__main__":
    sys.exit(main())
