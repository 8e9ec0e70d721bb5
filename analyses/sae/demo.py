"""The SAE step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path

SITE = "blocks.1.hook_resid_post"
D_SAE = 64


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """Train a TopK SAE (d_sae 64, k 8, the trainer's defaults otherwise: 2,000 steps of 64
    rows, dead-latent resampling) on the demo's toy-lm store at `SITE` and write its feature
    report, under `out/sae/toy-lm` (kept if already there with these settings, on this store;
    retrained otherwise). Returns the summary line.

    64 latents, not 256: the site's 3,832 rows span about 20 dimensions (99% of the variance),
    and of 256 latents half stayed dead with resampling and AuxK both on (128 latents without resampling: 23% dead);
    at 64 under 5% are dead (issue 22, benchmarks/RESULTS.md)."""
    import json
    import shutil
    from dataclasses import asdict

    from analyses.sae import TrainConfig, evaluate, load_sae, train_sae
    from analyses.sae.features import feature_stats, save_feature_stats
    from workbench import console
    from workbench.errors import InputError
    from workbench.store import ActivationStore

    store = ActivationStore(out / "stores" / "toy-lm")
    run = out / "sae" / "toy-lm"
    config = TrainConfig(normalize="expected_norm")
    try:
        sae, meta = load_sae(run)
        current = meta.get("train") == json.loads(json.dumps(asdict(config)))
        current = current and meta.get("source", {}).get("spec") == store.spec
    except InputError:
        current = False
    if not current:  # missing, or trained with older defaults or on an older capture
        if run.exists():
            console.log(f"{run}: trained with other settings or data; retraining")
            shutil.rmtree(run)
        train_sae(store, run, "topk", config, site=SITE, d_sae=D_SAE, k=8)
        sae, meta = load_sae(run)
    features = run / "features"
    if not (features / "features.json").is_file():
        stats = feature_stats(sae, store, SITE)
        save_feature_stats(
            stats, features, {"sae": str(run.resolve()), "store": str(store.path), "site": SITE}
        )
    metrics = evaluate(sae, store, SITE)
    settled = meta.get("convergence", {})
    trend = (
        f"; loss still falling at the end ({100 * settled['loss_drop']:.1f}% per tenth of the run)"
        if settled.get("loss_still_falling") and settled.get("loss_drop") is not None
        else ""
    )
    return (
        f"SAE on toy-lm {SITE}: explained variance {metrics['explained_variance']:.3f}, "
        f"L0 {metrics['l0']:.1f}, dead {metrics['dead_fraction']:.2f}{trend}; features in "
        f"{features}"
    )
