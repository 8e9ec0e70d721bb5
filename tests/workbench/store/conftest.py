"""Fixtures of the store tests: deterministic chunks of activations and their metadata."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from workbench.store import StoreWriter

SITES = {"blocks.0.hook_resid_post": (6,), "blocks.1.mlp.hook_post": (2, 3)}
EXAMPLES_PER_CHUNK = 5
ROWS_PER_EXAMPLE = 4


def _make_chunks(n_chunks: int = 3, seed: int = 0, sites=None) -> list[dict]:
    """Chunks as append() kwargs; chunk i covers examples [5i, 5i + 5), 4 rows each."""
    rng = np.random.default_rng(seed)
    sites = SITES if sites is None else sites
    chunks = []
    for i in range(n_chunks):
        n = EXAMPLES_PER_CHUNK * ROWS_PER_EXAMPLE
        examples = np.repeat(
            np.arange(EXAMPLES_PER_CHUNK) + EXAMPLES_PER_CHUNK * i, ROWS_PER_EXAMPLE
        )
        chunks.append(
            {
                "acts": {
                    site: rng.standard_normal((n, *shape)).astype(np.float32)
                    for site, shape in sites.items()
                },
                "token_ids": rng.integers(0, 50_000, n),
                "example_index": examples,
                "position": np.tile(np.arange(ROWS_PER_EXAMPLE), EXAMPLES_PER_CHUNK),
                "row_labels": {"is_noun": rng.integers(0, 2, n).astype(bool)},
                "example_labels": {"sentiment": rng.standard_normal(EXAMPLES_PER_CHUNK)},
            }
        )
    return chunks


def _concat(chunks: list[dict], key: str, site: str | None = None) -> np.ndarray:
    """The concatenation over chunks of one field (site activations flattened to 2-D)."""
    if key == "acts":
        return np.concatenate([c["acts"][site].reshape(len(c["acts"][site]), -1) for c in chunks])
    if key in ("row_labels", "example_labels"):
        return np.concatenate([c[key][site] for c in chunks])
    return np.concatenate([c[key] for c in chunks])


def _spec_for(**extra) -> dict:
    return {
        "model": "toy",
        "checkpoint": "final",
        "dataset": "synthetic",
        "sites": sorted(SITES),
        "positions": "all",
        **extra,
    }


@pytest.fixture
def make_chunks() -> Callable:
    return _make_chunks


@pytest.fixture
def concat() -> Callable:
    return _concat


@pytest.fixture
def spec_for() -> Callable:
    return _spec_for


@pytest.fixture
def chunks() -> list[dict]:
    return _make_chunks()


@pytest.fixture
def write_store() -> Callable:
    def write(path, chunks, spec=None, finalize=True, **kwargs):
        writer = StoreWriter(path, spec or _spec_for(), **kwargs)
        for chunk in chunks:
            writer.append(**chunk)
        return writer.finalize() if finalize else writer

    return write
