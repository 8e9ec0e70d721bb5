"""`workbench_app.lib.home_view`: stores sorted by state, a store's per-site statistics against
the activations it was written from, and the depth chart's ticks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from app_stores import SITES, WIDTH, make_store

from workbench.store import ActivationStore
from workbench_app.lib.home_view import (
    depth_figure,
    manifest_summary,
    max_abs_figure,
    results_caption,
    store_statistics,
    stores_by_state,
)


def test_stores_are_sorted_into_complete_incomplete_and_unreadable():
    stores = {
        "stores/a": {"complete": True, "error": None, "sites": SITES},
        "stores/partial": {"complete": False, "error": None},
        "stores/broken": {"complete": False, "error": "not valid JSON"},
        "stores/b": {"complete": True, "error": None, "sites": SITES},
    }
    complete, incomplete, unreadable = stores_by_state(stores)
    assert list(complete) == ["stores/a", "stores/b"] and complete["stores/a"] is stores["stores/a"]
    assert incomplete == ["stores/partial"]
    assert unreadable == {"stores/broken": "not valid JSON"}


def test_results_caption_counts_by_analysis():
    results = [{"analysis": "twonn"}, {"analysis": "probe"}, {"analysis": "twonn"}]
    assert results_caption(results) == "Results: probe (1), twonn (2)"
    assert results_caption([]) is None


def test_statistics_match_the_activations_written(tmp_path):
    made = make_store(tmp_path, "stores/toy", planted_value=-321.5)
    store = ActivationStore(made.path)
    table, max_abs = store_statistics(store)
    assert list(table.columns) == [
        "site", "layer", "width", "mean norm", "rms", "max |a|", "top dim", "top token id",
        "top-dim variance share",
    ]  # fmt: skip
    assert list(table["site"]) == SITES and list(table["layer"]) == [0, 1, 2]
    assert (table["width"] == WIDTH).all()
    for site in SITES:
        x = store.read(site, np.arange(made.n_rows)).astype(np.float64)
        row = table.set_index("site").loc[site]
        assert row["mean norm"] == pytest.approx(np.linalg.norm(x, axis=1).mean(), rel=1e-5)
        assert row["rms"] == pytest.approx(np.sqrt((x**2).mean()), rel=1e-5)
        assert row["max |a|"] == pytest.approx(np.abs(x).max())
        var = x.var(axis=0)
        assert row["top-dim variance share"] == pytest.approx(var.max() / var.sum(), rel=1e-5)
        np.testing.assert_allclose(max_abs[site], made.max_abs[site], rtol=1e-6)
    planted = table.set_index("site").loc[made.planted_site]
    assert planted["max |a|"] == pytest.approx(321.5) and planted["top dim"] == made.planted_dim


def frame(values: dict[str, list[float]]) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    return pd.DataFrame({"site": [f"s{i}" for i in range(n)], "layer": [2, None, 0][:n], **values})


@pytest.mark.parametrize(("top", "dtick"), [(500.0, "D2"), (5000.0, 1)])
def test_depth_ticks_spell_values_out_per_decade_beyond_three_decades(top, dtick):
    table = frame({"mean norm": [1.0, 2.0, 3.0], "rms": [1.5, 2.5, 3.5], "max |a|": [4, 5, top]})
    fig = depth_figure(table)
    assert fig.layout.yaxis.dtick == dtick and fig.layout.yaxis.type == "log"
    # sites in layer order, a site without a layer first
    assert list(fig.data[0].x) == ["s1", "s2", "s0"]
    assert {t.name for t in fig.data} == {"mean norm", "rms", "max |a|"}


def test_max_abs_bars_and_manifest_summary():
    fig = max_abs_figure("blocks.0.x", [1.0, 3.0])
    assert list(fig.data[0].y) == [1.0, 3.0] and "blocks.0.x" in fig.layout.title.text
    manifest = {"spec": {"model": "m"}, "sites": {"a": {}}, "schema_version": 2, "chunks": []}
    assert manifest_summary(manifest) == {
        "spec": {"model": "m"},
        "provenance": {},
        "schema_version": 2,
        "sites": {"a": {}},
    }
