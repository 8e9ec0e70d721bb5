"""The SAE step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path

SITE = "blocks.1.hook_resid_post"


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """Train a TopK SAE (d_sae 256, k 8) on the demo's toy-lm store at `SITE` and write its
    feature report, under `out/sae/toy-lm` (kept if already there). Returns the summary line."""
    from analyses.sae import TrainConfig, evaluate, load_sae, train_sae
    from analyses.sae.features import feature_stats, save_feature_stats
    from workbench.errors import InputError
    from workbench.store import ActivationStore

    store = ActivationStore(out / "stores" / "toy-lm")
    run = out / "sae" / "toy-lm"
    try:
        sae, _ = load_sae(run)
    except InputError:
        config = TrainConfig(
            batch_size=256, epochs=20, lr=1e-3, warmup_steps=10, dead_window_tokens=20000,
            normalize="expected_norm",
        )  # fmt: skip
        train_sae(store, run, "topk", config, site=SITE, d_sae=256, k=8)
        sae, _ = load_sae(run)
    features = run / "features"
    if not (features / "features.json").is_file():
        stats = feature_stats(sae, store, SITE)
        save_feature_stats(
            stats, features, {"sae": str(run.resolve()), "store": str(store.path), "site": SITE}
        )
    metrics = evaluate(sae, store, SITE)
    return (
        f"SAE on toy-lm {SITE}: explained variance {metrics['explained_variance']:.3f}, "
        f"L0 {metrics['l0']:.1f}, dead {metrics['dead_fraction']:.2f}; features in {features}"
    )
