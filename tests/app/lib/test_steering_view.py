"""`workbench_app.lib.steering_view`: the directions offered, the generations side by side and a
saved sweep's charts."""

from __future__ import annotations

import pandas as pd

from workbench.data.grammar import TOPICS
from workbench_app.lib.steering_view import (
    CONCEPTS,
    SAVED,
    collateral_figure,
    directions,
    dose_response_figure,
    generations_table,
    sweep_frame,
    sweep_heatmap,
)


def test_directions_are_the_concepts_then_the_saved_vectors():
    found = directions(["vectors/a.safetensors"])
    assert found[:2] == ["positive sentiment", "negative sentiment"]
    assert found[-1] == f"{SAVED}vectors/a.safetensors" and len(found) == len(CONCEPTS) + 1
    assert CONCEPTS[f"topic: {TOPICS[1]}"] == ("topic", 1)


def test_generations_are_decoded_side_by_side():
    def decode(tokens, skip_special_tokens):
        assert skip_special_tokens
        return " ".join(map(str, tokens))

    table = generations_table(["p"], decode, [[1, 2]], [[3]], [[4, 5]])
    assert table.to_dict("records") == [
        {"prompt": "p", "unsteered": "1 2", "steered": "3", "random direction, same norm": "4 5"}
    ]


def sweep() -> pd.DataFrame:
    rows = [
        {"site": site, "direction": direction, "coeff": coeff, "metric": metric, "value": value}
        for site in ("s0", "s1")
        for direction in ("concept", "random")
        for coeff in (-2.0, 0.0, 2.0)
        for metric, value in (("target_minus_opposite", coeff), ("kl", abs(coeff)), ("x", 9.0))
    ]
    return pd.DataFrame(rows)


def test_sweep_charts():
    frame, metric = sweep_frame(sweep(), {})
    assert metric == "target_minus_opposite" and set(frame["metric"]) == {metric}
    assert sweep_frame(sweep(), {"metric": "x"})[1] == "x"
    heat = sweep_heatmap(frame, metric)
    assert list(heat.data[0].x) == ["-2", "0", "2"] and list(heat.data[0].y) == ["s0", "s1"]
    assert heat.layout.coloraxis.cmid == 0.0
    assert {t.line.dash for t in dose_response_figure(frame, metric).data} == {"solid", "dot"}
    kl = collateral_figure(sweep())
    assert [t.name for t in kl.data] == ["s0", "s1"] and list(kl.data[0].y) == [2.0, 0.0, 2.0]
    assert collateral_figure(sweep()[sweep()["metric"] != "kl"]) is None
