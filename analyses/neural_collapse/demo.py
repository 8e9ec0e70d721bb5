"""The neural-collapse step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """NC metrics of digits-mlp and digits-cnn at every epoch checkpoint, saved under
    `out/results/neural-collapse/<model>-epochs` (kept if already there). Returns the summary
    line: NC1 at the deepest site, first and last epoch."""
    from analyses.neural_collapse.analyses import over_checkpoints
    from workbench.analysis.results import Result
    from workbench.errors import InputError

    parts = []
    for name in ("digits-mlp", "digits-cnn"):
        target = out / "results" / "neural-collapse" / f"{name}-epochs"
        try:
            result = Result.load(target)
        except InputError:
            result = over_checkpoints(name, zoo_root=zoo_root)
            result.save(target)
        nc1 = result.frame[
            (result.frame.metric == "nc1") & (result.frame.site == result.frame.site.iloc[-1])
        ]
        nc1 = nc1.sort_values("checkpoint_step")
        parts.append(
            f"{name} NC1 {nc1.value.iloc[0]:.3g} (epoch {nc1.checkpoint_step.iloc[0]}) -> "
            f"{nc1.value.iloc[-1]:.3g} (epoch {nc1.checkpoint_step.iloc[-1]})"
        )
    return "neural collapse: " + "; ".join(parts)
