"""Streaming: writing and reading a store keeps the resident memory flat."""

from __future__ import annotations

import gc

import numpy as np
import psutil
import pytest

from workbench.store import StoreWriter


@pytest.mark.slow
def test_rss_stays_flat_while_writing_200mb(tmp_path):
    rows, width, n_chunks = 8192, 384, 16  # 16 x 12.6 MB = 201 MB of float32
    rng = np.random.default_rng(0)
    chunk = rng.standard_normal((rows, width), dtype=np.float32)
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    peak = before
    writer = StoreWriter(tmp_path / "s", {"model": "memory-test"})
    for i in range(n_chunks):
        chunk[0, 0] = i  # a fresh chunk each time, as a capture would hand over
        writer.append({"blocks.0.hook_resid_post": chunk}, None, np.arange(rows) + i * rows, None)
        peak = max(peak, process.memory_info().rss)
    store = writer.finalize()
    assert store.n_rows == rows * n_chunks
    assert (peak - before) / 2**20 < 150, f"RSS grew by {(peak - before) / 2**20:.0f} MiB"
    # a full pass over the store in batches does not hold the data either
    total = 0.0
    for batch in store.iter_batches("blocks.0.hook_resid_post", 4096, shuffle=True):
        total += float(batch[:, 0].sum())
        peak = max(peak, process.memory_info().rss - _file_backed(process))
    assert (peak - before) / 2**20 < 150


def _file_backed(process: psutil.Process) -> int:
    """Resident bytes that are clean pages of memory-mapped files (the OS can drop them)."""
    info = process.memory_full_info()
    return getattr(info, "shared", 0)
