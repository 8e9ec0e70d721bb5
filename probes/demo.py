"""The probe step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

import tempfile
from pathlib import Path


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """Probes of toy-lm's labels at every site and checkpoint, saved under
    `out/results/probe/toy-lm-checkpoints` (kept if already there; the per-checkpoint stores
    are temporary). Returns the summary line: each label's best site at the last checkpoint."""
    from probes.sweep import over_checkpoints
    from workbench.analysis.results import Result
    from workbench.errors import InputError

    target = out / "results" / "probe" / "toy-lm-checkpoints"
    try:
        result = Result.load(target)
    except InputError:
        with tempfile.TemporaryDirectory(prefix="probe-sweep-") as work:
            result = over_checkpoints("toy-lm", zoo_root=zoo_root, work=work)
        result.save(target)
    last = result.frame[result.frame.checkpoint_step == result.frame.checkpoint_step.max()]
    table = last.pivot_table(index=["label", "site"], columns="metric", values="value")
    parts = []
    for label, rows in table.groupby(level="label"):
        best = rows["accuracy"].idxmax()
        parts.append(
            f"{label} {rows.loc[best, 'accuracy']:.2f} (control {rows.loc[best, 'control_accuracy']:.2f},"
            f" majority {rows.loc[best, 'majority_baseline']:.2f})"
        )
    return "probes on toy-lm: at the last checkpoint's best site, " + "; ".join(parts)
