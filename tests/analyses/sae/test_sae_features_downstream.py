"""Feature statistics against planted labels; contexts, output tokens, HTML; loss recovered
with an exact identity SAE and a zero SAE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_store

from analyses.sae import create_sae, identity_sae
from analyses.sae.downstream import loss_recovered
from analyses.sae.feature_page import export_html
from analyses.sae.features import (
    feature_stats,
    latent_report,
    output_tokens,
    quantile_rows,
)
from workbench.errors import InputError
from workbench.hooks.intervene import ZeroAblate, intervene

SITE = "blocks.0.hook_resid_post"


@pytest.fixture
def labelled_store(tmp_path):
    # latent j of the identity SAE fires exactly when x_j > 0; label "tag" = 1 where dim 0 is
    # positive, and label "half" = 1 on dim 1 > 0 for half of those rows only.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 4)).astype(np.float32)
    tag = (x[:, 0] > 0).astype(np.int64)
    half = np.where((x[:, 1] > 0) & (np.arange(400) % 2 == 0), 1, -1)
    return write_store(tmp_path / "s", x, {"tag": tag, "half": half}), x, tag, half


def test_precision_recall_closed_form(labelled_store):
    store, x, tag, half = labelled_store
    stats = feature_stats(identity_sae(4), store, SITE, top_n=5, batch_size=64)
    np.testing.assert_allclose(stats.density, np.r_[(x > 0).mean(0), (x < 0).mean(0)])
    best = {(r["label"], r["value"]): r for r in stats.best_latents()}
    assert best[("tag", 1)]["latent"] == 0
    assert best[("tag", 1)]["precision"] == pytest.approx(1.0)
    assert best[("tag", 1)]["recall"] == pytest.approx(1.0)
    assert best[("tag", 0)]["latent"] == 4  # fires when x_0 < 0
    fires1 = x[:, 1] > 0
    r = best[("half", 1)]
    assert r["latent"] == 1
    assert r["precision"] == pytest.approx((half[fires1] == 1).mean())
    assert r["recall"] == pytest.approx(1.0)
    ind = (tag == 1).astype(float)
    z0 = np.maximum(x[:, 0], 0)
    assert stats.labels["tag"].correlation[0, 1] == pytest.approx(
        np.corrcoef(z0, ind)[0, 1], rel=1e-5
    )
    # top rows of latent 0 are the rows with the largest x_0
    np.testing.assert_array_equal(np.sort(stats.top_rows[0]), np.sort(np.argsort(-x[:, 0])[:5]))


def test_report_contexts_html(labelled_store, tmp_path):
    store, x, _, _ = labelled_store
    sae = identity_sae(4)
    w_u = torch.randn(4, 7)
    report = latent_report(sae, store, SITE, 0, w_u=w_u, n_top=3)
    top = report["top_contexts"][0]
    assert top["row"] == int(np.argmax(x[:, 0]))
    assert top["acts"][top["focus"]] == pytest.approx(float(x[:, 0].max()))
    assert report["density"] == pytest.approx((x[:, 0] > 0).mean())
    out = output_tokens(sae, w_u, 0, k=2)
    assert [v for _, v in out["top"]] == pytest.approx(sorted(w_u[0].tolist(), reverse=True)[:2])
    page = export_html(report, tmp_path / "f.html").read_text()
    assert "Latent 0" in page and "rgba(255,140,0,1.00)" in page
    with pytest.raises(InputError, match="d_model 3"):
        output_tokens(sae, torch.randn(3, 7), 0)


def test_quantile_rows_cover_bins():
    values = np.r_[np.zeros(10), np.arange(1, 101, dtype=float)]
    bins = quantile_rows(values, n_bins=4, per_bin=2)
    assert [(lo, hi) for lo, hi, _ in bins] == [(1, 25), (26, 50), (51, 75), (76, 100)]
    for lo, hi, rows in bins:
        assert len(rows) == 2 and ((values[rows] >= lo) & (values[rows] <= hi)).all()


def test_loss_recovered_identity_and_zero(neox):
    texts = ["the cat sat on the mat .", "a dog ran over the log ."]
    site = "blocks.1.hook_resid_post"
    d = neox.model.cfg.d_model
    got = loss_recovered(neox, identity_sae(d), site, texts)
    assert got["ce_sae"] == pytest.approx(got["ce_clean"], abs=1e-5)
    assert got["loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    assert got["ablation"] == "zero"
    zero = create_sae("relu", d_in=d, d_sae=8)
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
    got = loss_recovered(neox, zero, site, texts)
    assert got["loss_recovered"] == pytest.approx(0.0, abs=1e-5)  # x_hat = 0 = zero ablation
    mean = torch.randn(d)
    got = loss_recovered(neox, identity_sae(d), site, texts, ablation="mean", mean=mean)
    assert got["ablation"] == "mean" and got["loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    with intervene(neox, ZeroAblate(site)):
        pass  # hooks removed: the clean loss is unchanged afterwards
    assert loss_recovered(neox, identity_sae(d), site, texts)["ce_clean"] == pytest.approx(
        got["ce_clean"]
    )
    with pytest.raises(InputError, match="ablation 'none'"):
        loss_recovered(neox, identity_sae(d), site, texts, ablation="none")
