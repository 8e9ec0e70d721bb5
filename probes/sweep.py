"""Probes per site and per checkpoint of a zoo language model: which layer decodes a label, and
from which training step on.

`over_checkpoints("toy-lm", ["pos", "topic@last", "sentiment@last"])` captures every
checkpoint (or `steps`) on the model's own dataset into a store `work/<name>-step<N>` (kept, so a
rerun reuses it; one checkpoint loaded at a time, `workbench.analysis.checkpoints`), then probes
each site for each label. A label `name@LEVEL` picks the `probe` analysis's `label_level`:
`topic@last` is the text's topic at its last token (what a causal model has read by then),
`topic@example` the same label on every token (early tokens cannot know it yet), `topic@token`
the per-token label; a bare name reads the only level the store holds it at (a name held at
both levels is an error naming both). The frame's `label_level` column names the level read. The default grid
(C in 0.01, 0.1, 1, 3-fold grouped CV) is one value shorter than the `probe` analysis's to keep
a sweep of checkpoints x sites x labels quick.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from probes.linear import Params, evaluate, frame_rows, label_level, probe_inputs
from workbench.analysis.results import Result
from workbench.analysis.sources import Source

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
    from workbench.analysis.checkpoints import capture_stores
    from workbench.data import load_dataset

    labels = labels or DEFAULT_LABELS.get(name, ())
    params = params or Params(grid="0.01,0.1,1", max_rows=20000)
    series = zoo.load_series(name, zoo_root)
    dataset = zoo.get_recipe(name).dataset
    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="probe-sweep-"))
    stores = capture_stores(
        series,
        sites=sites,
        examples=load_dataset(dataset, n_examples),
        out=work,
        steps=steps,
        prefix=f"{name}-step",
        device="cpu",
        dataset=dataset,
    )
    frames = []
    for step, store in stores.items():
        for site in store.sites:
            for spec in labels:
                label, _, level = spec.partition("@")
                source = Source.from_store(store, site, label)
                run_params = replace(params, label_level=level or "auto")
                out = evaluate(*probe_inputs(source, run_params), run_params)
                level = label_level(source, run_params.label_level)
                frames.append(
                    frame_rows(
                        out,
                        model=name,
                        checkpoint_step=step,
                        site=site,
                        label=spec,
                        label_level=level,
                    )
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
