"""The neural-collapse step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """NC metrics of digits-mlp and digits-cnn on their training images at every epoch
    checkpoint, saved under `out/results/neural-collapse/<model>-epochs` (kept if already
    there). Returns the summary line: the terminal phase at the classifier's input (NC1 at
    the first epoch, at zero training error and at the last; NC3 and NC4 at the last)."""
    from analyses.neural_collapse.analyses import over_checkpoints
    from analyses.neural_collapse.terminal import terminal_phase
    from workbench import zoo
    from workbench.analysis.results import Result
    from workbench.errors import InputError

    parts = []
    for name in ("digits-mlp", "digits-cnn"):
        target = out / "results" / "neural-collapse" / f"{name}-epochs"
        try:
            result = Result.load(target)
            stale = zoo.recipe_version(result.provenance) != zoo.get_recipe(name).version
        except InputError:
            stale = True
        if stale:  # missing, or measured on a build of an older recipe
            result = over_checkpoints(name, zoo_root=zoo_root)
            result.save(target)
        parts.append(f"{name} {_phase_text(terminal_phase(result.frame))}")
    return "neural collapse (train split): " + "; ".join(parts)


def _phase_text(summary: dict[str, Any]) -> str:
    """The phase in one line, e.g. `NC1 1.05 (epoch 0) -> 0.129 at zero training error (epoch
    7) -> 0.0082 (epoch 200, 16x lower), NC3 0.011, NC4 0` (without a zero-error checkpoint,
    says so)."""
    nc = summary["metrics"]
    first, last = summary["first_step"], summary["last_step"]
    start = f"NC1 {nc['nc1']['first']:.3g} (epoch {first})"
    end = f"{nc['nc1']['last']:.3g} (epoch {last}"
    tail = ""
    if "nc3" in nc:
        tail = f", NC3 {nc['nc3']['last']:.2g}, NC4 {nc['nc4']['last']:.2g}"
    if summary["zero_error_step"] is None:
        return f"{start} -> {end}), never at zero training error{tail}"
    zero_step = summary["zero_error_step"]
    zero = f"{nc['nc1']['zero_error']:.3g} at zero training error (epoch {zero_step})"
    return f"{start} -> {zero} -> {end}, {summary['nc1_fall']:.3g}x lower){tail}"
