"""Batch analyses over models, checkpoints, datasets, sites and analyses, from a YAML spec.

    spec = load_spec("toy-lm.yaml")          # validated; errors name the line and field
    plan = make_plan(spec)                   # captures and cells, each keyed by a content hash
    run_batch(plan, executor="local")        # resumable: finished cells are skipped
    frame = read_results(plan.out)           # tidy: one row per cell x metric

Activations are captured once per (model, checkpoint, dataset) into a store and shared by every
analysis cell that reads them; each cell's result lands in `cells/<key>/` (JSON written last, so
a cell without it is not finished) and `results.parquet` gathers them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.lazy import lazy_exports

if TYPE_CHECKING:
    from workbench.batch.plan import (
        Plan,
        make_plan,
    )
    from workbench.batch.report import (
        write_report,
    )
    from workbench.batch.run import (
        batch_status,
        read_results,
        run_batch,
    )
    from workbench.batch.spec import (
        BatchSpec,
        load_spec,
    )

# imported on first use, so that `workbench --help` (which adds the batch verb) stays fast
_EXPORTS = {
    "Plan": "workbench.batch.plan",
    "make_plan": "workbench.batch.plan",
    "write_report": "workbench.batch.report",
    "batch_status": "workbench.batch.run",
    "read_results": "workbench.batch.run",
    "run_batch": "workbench.batch.run",
    "BatchSpec": "workbench.batch.spec",
    "load_spec": "workbench.batch.spec",
}
__all__ = [
    "BatchSpec",
    "Plan",
    "batch_status",
    "load_spec",
    "make_plan",
    "read_results",
    "run_batch",
    "write_report",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
