"""`analyses.activation_stats.table`: one row per site of a store from its streaming statistics,
equal to the statistics of the activations themselves."""

from __future__ import annotations

import numpy as np
import pytest

from analyses.activation_stats.table import max_abs_per_dim, site_table
from workbench.store import ActivationStore, StoreWriter

SITES = ["hook_embed", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    n = 50
    acts = {
        site: (rng.standard_normal((n, 6)) + i).astype(np.float32) for i, site in enumerate(SITES)
    }
    acts[SITES[2]][7, 4] = 90.0  # the largest |a| of its site, at row 7, dim 4
    writer = StoreWriter(tmp_path / "s", {"model": "m", "dataset": "d", "sites": SITES})
    writer.append(acts, np.arange(n) + 100, np.arange(n) // 5, np.arange(n) % 5)
    writer.finalize()
    return ActivationStore(tmp_path / "s"), acts


def test_one_row_per_site_equal_to_the_activations_statistics(store):
    reader, acts = store
    table = site_table(reader).set_index("site")
    assert list(table.index) == SITES
    assert np.isnan(table.loc["hook_embed", "layer"]) and table.loc[SITES[2], "layer"] == 1
    for site, x in acts.items():
        x = x.astype(np.float64)
        row = table.loc[site]
        assert row["width"] == 6
        assert row["mean_norm"] == pytest.approx(np.linalg.norm(x, axis=1).mean(), rel=1e-6)
        assert row["rms"] == pytest.approx(np.sqrt((x**2).mean()), rel=1e-6)
        assert row["max_abs"] == pytest.approx(np.abs(x).max())
        var = x.var(axis=0)
        assert row["top_dim_variance_share"] == pytest.approx(var.max() / var.sum(), rel=1e-6)
        np.testing.assert_allclose(max_abs_per_dim(reader)[site], np.abs(x).max(axis=0), rtol=1e-6)
    assert table.loc[SITES[2], "top_dim"] == 4 and table.loc[SITES[2], "top_token_id"] == 107
