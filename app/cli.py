"""The `workbench app` verb, added to the core's command by the app (entry-point group
`workbench.commands`), so that the core never imports the app."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `workbench app [--port N] [--host H] [--runs DIR] [--zoo-root DIR]`."""
    p = sub.add_parser(
        "app",
        help="start the web app (127.0.0.1)",
        description="Start the Streamlit app over a runs directory.",
    )
    p.add_argument("--port", type=int, default=8501)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default 127.0.0.1; 0.0.0.0 exposes it to the network)",
    )
    p.add_argument(
        "--runs",
        default=None,
        help="directory of stores and results the app may read (default: where `workbench "
        "demo` writes, runs/demo)",
    )
    p.add_argument("--zoo-root", help="zoo cache shown on the home page (default $WORKBENCH_ZOO)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench_app.launch import launch_app
    from workbench_app.services.runsdir import demo_default_out

    return launch_app(
        host=args.host,
        port=args.port,
        runs=Path(args.runs or demo_default_out()),
        zoo_root=Path(args.zoo_root) if args.zoo_root else None,
    )
