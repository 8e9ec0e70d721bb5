"""The massive-activation step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """Track toy-lm over its checkpoints and ablate at its last one into `out/massive/toy-lm`
    (kept if already there). Returns the summary line."""
    import pandas as pd

    from analyses.massive.track import findings, run_job
    from workbench import zoo
    from workbench.data import load_dataset

    folder = out / "massive" / "toy-lm"
    if not (folder / "trajectory.parquet").is_file():
        texts = [e.text for e in load_dataset("grammar-lm", 16)]
        run_job(zoo.load_series("toy-lm", zoo_root), texts, folder)
    found = findings(
        pd.read_parquet(folder / "trajectory.parquet"), pd.read_parquet(folder / "ablation.parquet")
    )
    top = max(found["layers"], key=lambda x: x["last_ratio"])
    zero = next(a for a in found["ablation"] if a["mode"] == "zero")
    sun = "" if found["sun_criterion"] else ", none massive by Sun et al.'s 1000x criterion"
    return (
        f"massive activations in toy-lm: over its checkpoints, layer {top['layer']} max/median "
        f"{top['first_ratio']:.1f} -> {top['last_ratio']:.1f}{sun}; zeroing the largest entries "
        f"at the last step costs {zero['delta_massive'] / zero['clean_loss']:+.2%} of the loss "
        f"({'more than' if zero['significant'] else 'no more than'} random entries + 2 std); "
        f"{folder}"
    )
