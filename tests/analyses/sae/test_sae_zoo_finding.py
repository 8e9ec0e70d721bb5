"""Zoo finding: a TopK SAE on toy-lm's residual stream (the demo's store) has latents that
match grammar-lm's per-word topic and sentiment labels.

Measured (2026-11-23, blocks.1.hook_resid_post, d_sae 256, k 8, 20 epochs): best-latent F1
0.66-0.74 per topic (precision 0.70-1.0, recall 0.49-0.64) and 0.68 per sentiment (precision
0.73, recall 0.64). A latent firing at random has precision = the value's share of the rows
(under 0.1 for a topic), so the thresholds below (F1 >= 0.5, precision >= 0.6 for every value)
cannot be met by chance. Example-level labels (every token of an example) match far less well
(F1 0.3-0.5): the residual stream at this depth carries the topic on the topic words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analyses.sae import TrainConfig, evaluate, train_sae
from analyses.sae.features import feature_stats
from workbench.store import ActivationStore

STORE = Path(__file__).resolve().parents[3] / "runs" / "demo" / "stores" / "toy-lm"
SITE = "blocks.1.hook_resid_post"


@pytest.mark.slow
def test_latents_match_topic_and_sentiment(tmp_path):
    if not (STORE / "manifest.json").is_file():
        pytest.skip(f"no demo store at {STORE} (run `workbench demo` first)")
    store = ActivationStore(STORE)
    config = TrainConfig(
        batch_size=256,
        epochs=20,
        lr=1e-3,
        warmup_steps=10,
        dead_window_tokens=20000,
        normalize="expected_norm",
    )
    sae, _ = train_sae(store, tmp_path, "topk", config, site=SITE, d_sae=256, k=8)
    assert evaluate(sae, store, SITE)["explained_variance"] > 0.8
    best = [
        r
        for r in feature_stats(sae, store, SITE).best_latents()
        if r["label"] in ("topic", "sentiment")
    ]
    assert len(best) == 6  # 4 topics, 2 sentiments
    for row in best:
        assert row["f1"] >= 0.5 and row["precision"] >= 0.6, row
