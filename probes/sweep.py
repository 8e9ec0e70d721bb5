"""Probes per site and per checkpoint of a zoo language model: which layer decodes a label, and
from which training step on.

`over_checkpoints("toy-lm", ["pos", "topic@last", "sentiment@last"])` captures every
checkpoint (or `steps`) on the model's own dataset into a store under `work` (kept, so a rerun
reuses it), then probes each site for each label. A label `name@LEVEL` picks the `probe`
analysis's `label_level`: `topic@last` is the text's topic at its last token (what a causal
model has read by then), `topic@example` the same label on every token (early tokens cannot
know it yet); a bare name reads the per-row label where there is one. The default grid
(C in 0.01, 0.1, 1, 3-fold grouped CV) is one value shorter than the `probe` analysis's to keep
a sweep of checkpoints x sites x labels quick.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from probes.linear import Params, evaluate, frame_rows, probe_inputs
from workbench.errors import InputError
from workbench.results import Result
from workbench.sources import Source

DEFAULT_LABELS = {
    "toy-lm": ("pos", "topic@last", "sentiment@last"),
    "fsm-lm": ("state",),
}


def first_decodable(frame: pd.DataFrame, threshold: float = 0.9) -> pd.DataFrame:
    """Per (label, site): the checkpoint from which on the probe accuracy stays at or above
    `threshold` through the last checkpoint (NaN when the last one is below), from an
    `over_checkpoints` frame; `first_reached` is the first checkpoint at or above it at all."""
    acc = frame[frame.metric == "accuracy"]
    rows = []
    for (label, site), group in acc.groupby(["label", "site"], sort=False):
        curve = group.sort_values("checkpoint_step")
        above = (curve.value >= threshold).to_numpy()
        below = np.flatnonzero(~above)
        start = 0 if not len(below) else below[-1] + 1
        rows.append(
            {
                "label": label,
                "site": site,
                "from_step": curve.checkpoint_step.iloc[start] if start < len(curve) else np.nan,
                "first_reached": curve.checkpoint_step[above].min() if above.any() else np.nan,
                "final_accuracy": curve.value.iloc[-1],
            }
        )
    return pd.DataFrame(rows)


def over_checkpoints(
    name: str = "toy-lm",
    labels: tuple[str, ...] | None = None,
    sites: str = "hook_embed,blocks.*.hook_resid_post",
    steps: list[int] | None = None,
    n_examples: int = 256,
    zoo_root: str | Path | None = None,
    work: str | Path | None = None,
    params: Params | None = None,
) -> Result:
    """Probe accuracy (with CI, control, selectivity, majority baseline) per checkpoint x site
    x label of zoo model `name`; frame columns model, checkpoint_step, site, label, metric,
    value."""
    from workbench import zoo
    from workbench.data import load_dataset
    from workbench.pipeline import capture_to_store

    labels = labels or DEFAULT_LABELS.get(name, ())
    params = params or Params(grid="0.01,0.1,1", max_rows=20000)
    series = zoo.load_series(name, zoo_root)
    examples = load_dataset(zoo.get_recipe(name).dataset, n_examples)
    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="probe-sweep-"))
    frames = []
    for step in steps if steps is not None else series.steps:
        store = capture_to_store(
            series.load(step, device="cpu"),
            sites,
            examples,
            work / f"{name}-step{step}",
            dataset=zoo.get_recipe(name).dataset,
            progress=False,
        )
        for site in store.sites:
            for spec in labels:
                label, _, level = spec.partition("@")
                source = Source.from_store(store, site, label)
                run_params = replace(params, label_level=level or "auto")
                out = evaluate(*probe_inputs(source, run_params), run_params)
                frames.append(
                    frame_rows(out, model=name, checkpoint_step=step, site=site, label=spec)
                )
    frame = pd.concat(frames, ignore_index=True)
    last = frame[frame.checkpoint_step == frame.checkpoint_step.max()]
    best = last[last.metric == "accuracy"].sort_values("value").groupby("label").tail(1)
    return Result(
        analysis="probe",
        frame=frame,
        headline={
            f"best_site_{row.label}": {"site": row.site, "accuracy": row.value}
            for row in best.itertuples()
        },
        params={"model": name, "labels": list(labels), "sites": sites, **asdict(params)},
        provenance={"model": name, "series": str(series.folder), "n_examples": n_examples},
    )


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """The probe step of `workbench demo` (entry-point group `workbench.demo`): probes of
    toy-lm's labels at every site and checkpoint, saved under `out/results/probe/toy-lm-
    checkpoints` (kept if already there; the per-checkpoint stores are temporary)."""
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
    return "probes on toy-lm, last checkpoint, best site: " + "; ".join(parts)
