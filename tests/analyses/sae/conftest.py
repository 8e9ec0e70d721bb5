"""Fixtures of the SAE tests: planted sparse data, a small labelled store, one torch thread
(tiny matmuls run far faster single-threaded on a shared 2-core machine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.store import StoreWriter


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def planted(n: int = 8000, d: int = 32, m: int = 48, k: int = 3, seed: int = 0):
    """(X (n, d) float32, D (m, d) unit directions, coefficients (n, m)): each row a
    non-negative combination of k random directions with weights U(0.5, 2)."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((m, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    idx = np.argsort(rng.random((n, m)), axis=1)[:, :k]
    coef = np.zeros((n, m))
    np.put_along_axis(coef, idx, rng.uniform(0.5, 2.0, (n, k)), axis=1)
    return (coef @ directions).astype(np.float32), directions, coef


def recovery(sae, directions: np.ndarray) -> float:
    """Mean over planted directions of the best |cosine| with a decoder row (1: every
    direction has a latent of its own)."""
    w = sae.W_dec.detach().numpy().astype(np.float64)
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    return float(np.abs(directions @ w.T).max(axis=1).mean())


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `workbench ARGV`."""
    from workbench.cli.main import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def write_store(
    path,
    acts: np.ndarray,
    labels: dict[str, np.ndarray] | None = None,
    seq: int = 8,
    chunks: int = 2,
    site: str = "blocks.0.hook_resid_post",
):
    """A store of `acts` at `site` in `chunks` chunks; rows grouped into examples of `seq`."""
    from workbench.store import ActivationStore

    n = len(acts)
    example_index = np.arange(n) // seq
    writer = StoreWriter(
        path, {"model": "planted", "dataset": "planted", "sites": [site], "dtype": "float32"}
    )
    bounds = np.linspace(0, example_index[-1] + 1, chunks + 1).astype(int) * seq
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        b = min(b, n)
        writer.append(
            {site: acts[a:b]},
            np.arange(a, b) % 50,
            example_index[a:b],
            np.arange(a, b) % seq,
            row_labels={k: v[a:b] for k, v in (labels or {}).items()},
        )
    writer.finalize()
    return ActivationStore(path)
