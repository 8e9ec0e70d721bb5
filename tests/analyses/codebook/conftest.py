"""Codebook models trained once per test run through `workbench codebook train` (shared by the
tests of this folder through `built_once`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from workbench.cli.main import main as _main


def _train(folder: Path, args: list[str]) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster on a shared CPU
    try:
        assert _main(["codebook", "train", *args, "--out", str(folder / "cb"), "--json"]) == 0
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fsm_defaults(built_once) -> Callable[[int], Path]:
    """`fsm_defaults(block)`: the folder of a codebook at fsm-lm's `blocks.{block}` residual
    stream trained with the CLI's defaults; its `train.json` holds what the command printed."""

    def get(block: int) -> Path:
        def build(folder: Path) -> None:
            import contextlib
            import io

            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                _train(folder, ["--sites", f"blocks.{block}.hook_resid_post"])
            (folder / "train.json").write_text(buffer.getvalue())

        return built_once(f"codebook-fsm-defaults-{block}", build)

    return get


@pytest.fixture(scope="session")
def grouped_toy(built_once) -> Path:
    """toy-lm with 8 groups of 500 codes at blocks.1 (`codebook train` through the CLI)."""
    folder = built_once(
        "codebook-toy-groups",
        lambda f: _train(
            f, ["--model", "toy-lm", "--groups", "8", "--n-codes", "500", "--steps", "100"]
        ),  # fmt: skip
    )
    return folder / "cb"
