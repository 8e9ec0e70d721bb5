"""`workbench_app.lib.geometry_view`: which stores can be drawn beside a store, why a URL's
second store is refused, two stores' curves on their shared sites and their difference, and a
store's checkpoint series."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench_app.lib.geometry_view import (
    difference_table,
    label,
    layer_figure,
    layer_panels,
    partner_refusal,
    series_of,
    shared_site_partners,
    side_by_side,
    training_figure,
    values_table,
)

S = [f"blocks.{i}.hook_resid_post" for i in range(3)]


def entry(sites, model="toy", step=None):
    spec = {"model": model, "dataset": "d", "n_examples": 8, "max_length": 4, "positions": "all"}
    if step is not None:
        spec["checkpoint_step"] = step
    return {"sites": list(sites), "spec": spec}


STORES = {
    "b/step10": entry(S, step=10),
    "a/other": entry(["fc1"], model="mlp"),
    "b/step0": entry(S, step=0),
    "c/half": entry(S[1:], model="other"),
}


def test_partners_share_a_site_and_come_in_path_order():
    assert shared_site_partners(STORES, "b/step0") == ["b/step10", "c/half"]
    assert shared_site_partners(STORES, "a/other") == []


def test_refusals_say_why_a_second_store_is_not_drawn():
    why = partner_refusal(STORES, "a/other", [])
    assert (
        why("b/step0")
        == "`b/step0` shares no site with `a/other`: not compared. Stores that do: none."
    )
    assert why("nope") == (
        "No complete store `nope` under the runs directory; valid: a/other, b/step0, b/step10, "
        "c/half."
    )


def curves(store: str, sites: list[str], offset: float = 0.0) -> pd.DataFrame:
    layer = {s: S.index(s) if s in S else 9 for s in sites}
    rows = [
        {"analysis": a, "metric": m, "site": s, "layer": layer[s], "value": layer[s] + offset + k}
        for k, (a, m) in enumerate([("twonn", "dimension"), ("anisotropy", "mean_cosine")])
        for s in sites
    ]
    return label(pd.DataFrame(rows)).assign(store=store)


def test_side_by_side_keeps_the_shared_sites_and_subtracts_there():
    a, b = curves("a", S), curves("b", S[1:] + ["fc9"], offset=10.0)
    shown, order, only = side_by_side(a, b)
    assert order == S[1:] and only == [S[0], "fc9"]
    assert set(shown["site"]) == set(S[1:]) and set(shown["store"]) == {"a", "b"}
    diff = difference_table(a, b, order)
    assert list(diff.index.get_level_values("site")) == S[1:]
    assert (diff["twonn: dimension"] == -10.0).all()
    assert list(values_table(a).columns) == ["anisotropy: mean_cosine", "twonn: dimension"]


def test_layer_figures_dash_a_second_store_and_mark_a_site_they_have():
    a, b = curves("a", S), curves("b", S, offset=1.0)
    panels = dict(layer_panels(pd.concat([a, b]), S, S[1]))
    assert list(panels) == ["Intrinsic dimension", "Anisotropy (mean cosine of random pairs)"]
    fig = panels["Intrinsic dimension"]
    assert {t.line.dash for t in fig.data} == {"solid", "dot"}
    assert [s.x0 for s in fig.layout.shapes] == [S[1]]
    assert not layer_figure(a, "t", S, "fc1").layout.shapes  # a site the chart does not have


@pytest.mark.parametrize(("name", "steps"), [("b/step10", [0, 10]), ("c/half", [None])])
def test_a_store_belongs_to_its_checkpoint_series_or_stands_alone(name, steps):
    assert [step for step, _ in series_of(STORES, name)] == steps


def test_training_figure_is_log_unless_step_zero():
    over = label(
        pd.DataFrame(
            {
                "analysis": "twonn",
                "metric": "dimension",
                "site": "s",
                "layer": 0,
                "checkpoint_step": [10, 100, 1000],
                "value": [1.0, 2.0, 3.0],
            }
        )  # fmt: skip
    )
    assert training_figure(over, "twonn: dimension").layout.xaxis.type == "log"
    over["checkpoint_step"] = [0, 100, 1000]
    assert training_figure(over, "twonn: dimension").layout.xaxis.type is None
