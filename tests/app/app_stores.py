"""Helpers for the web app's tests: small real stores written with StoreWriter, and the path of
the app's Home.py. (A plain module, not conftest, so test files can import it by a unique name.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.store import StoreWriter

HOME = Path(__file__).resolve().parents[2] / "app" / "Home.py"

SITES = [
    "blocks.0.hook_resid_post",
    "blocks.1.hook_resid_post",
    "blocks.2.hook_resid_post",
]
WIDTH = 24
SEQ = 6  # tokens per example


@dataclass
class ToyStore:
    """What a test needs to know about a store it made."""

    path: Path
    relative: str  # path relative to the runs dir, as the app's `store` query parameter
    model: str
    n_rows: int
    n_examples: int
    sites: list[str]
    planted_site: str
    planted_row: int
    planted_dim: int
    planted_value: float
    max_abs: dict[str, np.ndarray] = field(default_factory=dict)  # site -> (width,) max |a|


def make_store(
    runs: Path,
    relative: str,
    *,
    model: str = "toy-model",
    n_examples: int = 10,
    chunks: int = 2,
    planted_site: str = SITES[1],
    planted_row: int | None = None,
    planted_dim: int = 5,
    planted_value: float = -321.5,
    finalize: bool = True,
    seed: int = 0,
) -> ToyStore:
    """A store of random activations at `runs/relative` with one planted large value.

    Activations are N(0, 1) (scaled up by depth so the line chart has a slope), except
    ``acts[planted_site][planted_row, planted_dim] = planted_value`` (row default: 5/8 of the way
    in, so in the last chunk). With finalize=False the
    writer is aborted after its chunks: an incomplete (resumable) store.
    """
    rng = np.random.default_rng(seed)
    n_rows = n_examples * SEQ
    planted_row = n_rows * 5 // 8 if planted_row is None else planted_row
    acts = {
        site: (rng.standard_normal((n_rows, WIDTH)) * (1 + i)).astype(np.float32)
        for i, site in enumerate(SITES)
    }
    acts[planted_site][planted_row, planted_dim] = planted_value
    example_index = np.repeat(np.arange(n_examples), SEQ)
    position = np.tile(np.arange(SEQ), n_examples)
    token_ids = rng.integers(0, 1000, n_rows)
    path = runs / relative
    spec = {"model": model, "dataset": "toy-text", "sites": SITES, "dtype": "float32"}
    writer = StoreWriter(path, spec, provenance={"made_by": "tests/app"})
    bounds = np.linspace(0, n_examples, chunks + 1).astype(int)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        rows = slice(a * SEQ, b * SEQ)
        writer.append(
            {site: x[rows] for site, x in acts.items()},
            token_ids[rows],
            example_index[rows],
            position[rows],
        )
    if finalize:
        writer.finalize()
    else:
        writer.abort()
    return ToyStore(
        path=path,
        relative=relative,
        model=model,
        n_rows=n_rows,
        n_examples=n_examples,
        sites=list(SITES),
        planted_site=planted_site,
        planted_row=planted_row,
        planted_dim=planted_dim,
        planted_value=planted_value,
        max_abs={site: np.abs(x).max(axis=0) for site, x in acts.items()},
    )
