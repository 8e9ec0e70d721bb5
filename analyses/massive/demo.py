"""The massive-activation step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """Track toy-lm over its checkpoints and ablate at its last one into `out/massive/toy-lm`
    (kept if already there). Returns the summary line."""
    from analyses.massive.track import run_job
    from workbench import zoo
    from workbench.data import load_dataset

    folder = out / "massive" / "toy-lm"
    if not (folder / "trajectory.parquet").is_file():
        texts = [e.text for e in load_dataset("grammar-lm", 16)]
        run_job(zoo.load_series("toy-lm", zoo_root), texts, folder)
    return f"massive activations of toy-lm over its checkpoints: {folder}"
