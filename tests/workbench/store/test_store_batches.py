"""iter_batches: every row exactly once, seeded shuffles."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import InputError

SITE = "blocks.1.mlp.hook_post"


def test_iter_batches_in_order(tmp_path, chunks, concat, write_store):
    store = write_store(tmp_path / "s", chunks)
    batches = list(store.iter_batches(SITE, batch_size=7))
    assert [len(b) for b in batches] == [7] * 8 + [4]
    np.testing.assert_array_equal(np.concatenate(batches), concat(chunks, "acts", SITE))


def test_iter_batches_shuffled_covers_every_row_once(tmp_path, make_chunks, write_store):
    chunks = make_chunks(n_chunks=5)
    for i, chunk in enumerate(chunks):  # row r holds the value r in every dim
        chunk["acts"][SITE] = np.broadcast_to(
            np.arange(20 * i, 20 * i + 20, dtype=np.float32)[:, None, None], (20, 2, 3)
        ).copy()
    store = write_store(tmp_path / "s", chunks)
    first = list(store.iter_batches(SITE, batch_size=16, shuffle=True, seed=3))
    rows = np.concatenate([b[:, 0] for b in first]).astype(int)
    assert sorted(rows.tolist()) == list(range(100))
    assert rows.tolist() != list(range(100))
    np.testing.assert_array_equal(rows, np.random.default_rng(3).permutation(100))
    again = np.concatenate([b[:, 0] for b in store.iter_batches(SITE, 16, shuffle=True, seed=3)])
    np.testing.assert_array_equal(again, rows)
    other = np.concatenate([b[:, 0] for b in store.iter_batches(SITE, 16, shuffle=True, seed=4)])
    assert not np.array_equal(other, rows)
    half = next(store.iter_batches(SITE, 8, shuffle=True, seed=3, dtype=np.float16))
    assert half.dtype == np.float16


def test_iter_batches_rejects_bad_batch_size(tmp_path, chunks, write_store):
    store = write_store(tmp_path / "s", chunks)
    with pytest.raises(InputError, match="batch_size"):
        next(store.iter_batches(SITE, 0))
