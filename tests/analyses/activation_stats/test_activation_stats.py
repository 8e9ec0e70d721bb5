import numpy as np
import pytest

from analyses.activation_stats.analyses import ANALYSIS, Params, run, site_metrics
from workbench.analysis.registry import analyses
from workbench.analysis.sources import Source
from workbench.store import RunningStats


def metrics_of(x):
    return site_metrics(RunningStats(topk=4).update(x, row_offset=0).summary())


def test_registered_through_entry_points():
    assert analyses()["activation-stats"] is ANALYSIS


def test_closed_forms_on_planted_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 10)) * np.arange(1, 11) + 3.0
    m = metrics_of(x)
    assert m["mean_norm"] == pytest.approx(np.linalg.norm(x, axis=1).mean(), rel=1e-9)
    assert m["rms"] == pytest.approx(np.sqrt((x**2).mean()), rel=1e-9)
    assert m["max_abs"] == pytest.approx(np.abs(x).max())
    var = x.var(axis=0)
    assert m["top_dim_variance_share"] == pytest.approx(var.max() / var.sum(), rel=1e-9)
    mean = x.mean(axis=0)
    assert m["mean_share"] == pytest.approx(
        (mean**2).sum() / ((mean**2).sum() + var.sum()), rel=1e-9
    )


def test_extremes():
    iso = metrics_of(np.random.default_rng(0).normal(size=(20000, 8)))
    assert iso["top_dim_variance_share"] == pytest.approx(1 / 8, abs=0.01)
    assert iso["mean_share"] < 1e-3
    one = np.zeros((100, 5))
    one[:, 2] = np.random.default_rng(0).normal(size=100)
    assert metrics_of(one)["top_dim_variance_share"] == pytest.approx(1.0)
    const = np.ones((50, 4))
    assert metrics_of(const)["mean_share"] == pytest.approx(1.0)


def test_store_and_array_paths_agree(tmp_path):
    from workbench.store import StoreWriter

    x = np.random.default_rng(2).normal(size=(300, 7)).astype(np.float32)
    writer = StoreWriter(tmp_path / "s", {"test": 1})
    writer.append({"layer": x[:120]}, token_ids=None, example_index=np.arange(120), position=None)
    writer.append(
        {"layer": x[120:]}, token_ids=None, example_index=np.arange(120, 300), position=None
    )
    store = writer.finalize()
    from_store = run(Source.from_store(store, "layer"), Params()).headline
    from_array = run(Source(acts=x), Params()).headline
    for key in ("mean_norm", "rms", "max_abs", "top_dim_variance_share", "mean_share"):
        assert from_store[key] == pytest.approx(from_array[key], rel=1e-6)
