"""The objective-landscape step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path

DIMS = (25, 50, 100, 200, 400, 800)


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """Train digits-mlp in Fastfood subspaces of d in `DIMS` (one seed, 15 epochs) and save the
    result under `out/intrinsic-dim/digits-mlp-fastfood` (kept if already there). Returns the
    summary line."""
    from analyses.landscape.sweep import TrainConfig, intrinsic_dimension
    from analyses.landscape.tasks import zoo_model
    from workbench.analysis.results import Result
    from workbench.errors import InputError

    folder = out / "intrinsic-dim" / "digits-mlp-fastfood"
    try:
        result = Result.load(folder)
    except InputError:
        factory, task = zoo_model("digits-mlp")
        result = intrinsic_dimension(
            factory, task, DIMS, projection="fastfood", config=TrainConfig(epochs=15),
            device=device, model_name="digits-mlp", out=folder,
        )  # fmt: skip
    head = result.headline
    return (
        f"objective landscape of digits-mlp: intrinsic dimension d_int90 = {head['d_int90']} of "
        f"D = {head['D']:,} parameters (baseline {head['baseline']:.3f}, {head['baseline_kind']})"
    )
