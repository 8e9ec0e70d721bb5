"""Probes over checkpoints (`probes.sweep`): each checkpoint's numbers are the `probe` analysis
run on that checkpoint's own store, and `first_decodable` reads the curve."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from probes.linear import Params, evaluate, probe_inputs
from probes.sweep import first_decodable, over_checkpoints
from workbench import zoo
from workbench.analysis.sources import Source
from workbench.store import ActivationStore


@pytest.mark.slow
def test_over_checkpoints_probes_each_checkpoints_own_store(quick_zoo, tmp_path):
    series = zoo.load_series("toy-lm", quick_zoo)
    first, last = series.steps[0], series.steps[-1]
    site = "blocks.1.hook_resid_post"
    params = Params(grid="0.1,1", max_rows=2000)
    kwargs = dict(sites=site, n_examples=48, zoo_root=quick_zoo, work=tmp_path, params=params)
    result = over_checkpoints("toy-lm", ("pos",), steps=["last", first], **kwargs)
    frame = result.frame
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"toy-lm-step{s}" for s in (first, last)]
    assert list(frame.checkpoint_step.unique()) == [first, last]
    assert set(frame.label_level) == {"token"}  # pos is a per-token label: auto names it
    for step in (first, last):
        store = ActivationStore(tmp_path / f"toy-lm-step{step}")
        assert store.spec["checkpoint_step"] == step
        run_params = replace(params, label_level="auto")
        direct = evaluate(
            *probe_inputs(Source.from_store(store, site, "pos"), run_params), run_params
        )
        rows = frame[(frame.checkpoint_step == step) & (frame.metric == "accuracy")]
        assert rows.value.iloc[0] == pytest.approx(direct["accuracy"])
    again = over_checkpoints("toy-lm", ("pos",), steps=[first, last], **kwargs)
    pd.testing.assert_frame_equal(again.frame, frame)  # the stores in `work` are reused


def test_first_decodable_is_the_step_from_which_on_accuracy_stays_above():
    curve = {0: 0.5, 16: 0.95, 64: 0.8, 512: 0.92, 1000: 0.97}
    frame = pd.DataFrame(
        [{"label": "l", "site": "s", "checkpoint_step": k, "metric": "accuracy", "value": v}
         for k, v in curve.items()]
    )  # fmt: skip
    row = first_decodable(frame, 0.9).iloc[0]
    assert row.from_step == 512 and row.first_reached == 16 and row.final_accuracy == 0.97
    assert np.isnan(first_decodable(frame, 0.99).iloc[0].from_step)
