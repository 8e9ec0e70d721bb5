"""Sources: second matrices, labels from a store, example groups, streaming rows."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.analysis.sources import Source
from workbench.errors import InputError, UnknownSiteError
from workbench.store import ActivationStore, StoreWriter


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    writer = StoreWriter(tmp_path / "s", {"model": "t", "sites": ["a", "b"]})
    for chunk in range(2):
        ex = np.repeat(np.arange(chunk * 3, chunk * 3 + 3), 4)  # 3 examples x 4 rows
        writer.append(
            {"a": rng.normal(size=(12, 5)), "b": rng.normal(size=(12, 7))},
            token_ids=None,
            example_index=ex,
            position=np.tile(np.arange(4), 3),
            row_labels={"pos": np.tile(np.arange(4), 3)},
            example_labels={"topic": np.array([chunk * 3, chunk * 3 + 1, chunk * 3 + 2]) % 2},
        )
    return writer.finalize()


def test_store_labels_rows_and_examples(store):
    src = Source.from_store(store, "a", label="pos")
    assert np.array_equal(src.label_array(), np.tile(np.arange(4), 6))
    topic = Source.from_store(store, "a", label="topic").label_array()
    assert np.array_equal(topic, np.repeat(np.arange(6) % 2, 4))
    assert np.array_equal(src.groups(), np.repeat(np.arange(6), 4))
    with pytest.raises(InputError, match="no label 'colour'.*valid: pos, topic"):
        Source.from_store(store, "a", label="colour")


def test_second_matrix_from_store_or_arrays(store, tmp_path):
    src = Source.from_store(store, "a", site_b="b")
    assert src.matrix_b().shape == (24, 7)
    assert src.provenance["site_b"] == "b"
    other = ActivationStore(store.path)
    assert Source.from_store(store, "a", store_b=other).matrix_b().shape == (24, 5)
    with pytest.raises(UnknownSiteError, match="no site 'c'"):
        Source.from_store(store, "a", site_b="c")
    with pytest.raises(InputError, match="--acts-b"):
        Source(acts=np.ones((3, 2))).matrix_b()
    with pytest.raises(InputError, match="needs labels"):
        Source(acts=np.ones((3, 2))).label_array()


def test_iter_rows_streams_in_order(store):
    src = Source.from_store(store, "b")
    batches = list(src.iter_rows(batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 4]
    assert np.array_equal(np.concatenate(batches), store.read("b"))
    arrays = Source(acts=np.arange(10.0).reshape(5, 2))
    assert np.array_equal(np.concatenate(list(arrays.iter_rows(2))), arrays.matrix())


def test_tables_load_as_numeric_arrays(tmp_path):
    import pandas as pd

    from workbench.analysis.sources import load_array

    frame = pd.DataFrame({"step": [0, 1, 2], "value": [1.5, 2.5, 3.5]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        assert np.array_equal(load_array(tmp_path / name), frame.to_numpy(dtype=float))
    frame.assign(note="x").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match=r"non-numeric columns \['note'\]"):
        load_array(tmp_path / "bad.csv")
    (tmp_path / "t.txt").write_text("1,2")
    with pytest.raises(InputError, match="valid: .npy, .safetensors, .csv, .parquet"):
        load_array(tmp_path / "t.txt")
