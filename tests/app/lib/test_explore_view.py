"""`workbench_app.lib.explore_view`: stores that can be mapped beside another, the map's
selected points into the URL's `sel` and back, and the selection's charts and rows table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from analyses.explore.api import decode_rows
from workbench_app.lib.explore_view import (
    encode_selection,
    makeup_figure,
    map_figure,
    row_of,
    rows_table,
    same_row_partners,
    same_rows,
    units_figure,
)


def test_partners_hold_as_many_rows_and_the_site():
    stores = {
        "a": {"n_rows": 60, "sites": ["s0", "s1"]},
        "b": {"n_rows": 60, "sites": ["s1"]},
        "c": {"n_rows": 61, "sites": ["s0", "s1"]},
        "d": {"n_rows": 60, "sites": ["s0"]},
    }
    assert same_row_partners(stores, "a", "s1") == ["b"]
    assert same_row_partners(stores, "a", "s0") == ["d"]


def reader(tokens, examples, positions):
    return SimpleNamespace(
        token_ids=lambda: np.array(tokens),
        example_index=lambda: np.array(examples),
        positions=lambda: np.array(positions),
    )


def test_same_rows_compares_tokens_examples_and_positions():
    a = reader([1, 2, 3], [0, 0, 1], [0, 1, 0])
    assert same_rows(a, reader([1, 2, 3], [0, 0, 1], [0, 1, 0]))
    assert not same_rows(a, reader([1, 2, 4], [0, 0, 1], [0, 1, 0]))
    assert not same_rows(a, reader([1, 2, 3], [0, 1, 1], [0, 0, 0]))


@pytest.mark.parametrize(
    ("point", "row"),
    [
        ({"customdata": [7]}, 7),
        ({"customdata": {"0": 8}}, 8),
        ({"customdata": []}, None),
        ({}, None),
    ],
)
def test_row_of_a_point(point, row):
    assert row_of(point) == row


def test_selection_round_trips_through_the_url():
    points = [{"customdata": [r]} for r in (9, 0, 1, 2, 4)] + [{"x": 1}]  # + a ring point
    sel = encode_selection(points)
    assert sel == "0-2,4,9"
    np.testing.assert_array_equal(decode_rows(sel, 10), [0, 1, 2, 4, 9])
    assert encode_selection([{"x": 1}]) is None


def test_map_rings_the_selected_rows_and_colours_in_numeric_order():
    coords = np.arange(8, dtype=float).reshape(4, 2)
    rows = np.array([5, 1, 3, 0])
    mask = np.array([False, True, True, False])
    labels = {"depth": np.array([10, 2, 2, 10, 1, 2])}
    fig = map_figure(coords, rows, mask, labels, "depth", "title", {"axes": ["PC1", "PC2"]})
    assert [t.name for t in fig.data] == ["2", "10", "selected (2)"]  # 2 before 10
    assert list(fig.data[-1].x) == [2.0, 4.0]
    assert fig.layout.xaxis.title.text == "PC1" and fig.layout.dragmode == "select"
    plain = map_figure(coords, rows, np.zeros(4, bool), labels, None, "t", {"axes": ["a", "b"]})
    assert len(plain.data) == 1 and [c[0] for c in plain.data[0].customdata] == [5, 1, 3, 0]


def test_selection_charts_and_rows_table():
    makeup = pd.DataFrame(
        {"value": ["x", "y"], "share_selected": [0.9, 0.1], "share_all": [0.5, 0.5]}
    )
    fig = makeup_figure(makeup, "pos")
    assert [t.name for t in fig.data] == ["share_selected", "share_all"]
    assert fig.layout.xaxis.title.text == "pos"
    units = units_figure(pd.DataFrame({"unit": [3, 11], "effect": [2.0, -1.5]}))
    assert list(units.data[0].x) == ["3", "11"]
    tokens = pd.DataFrame({"row": [1], "token": ["dog"], "context": ["the [dog]"]})
    table, has_tokens = rows_table(tokens)
    assert has_tokens and list(table.columns) == ["row", "token", "context"]
    table, has_tokens = rows_table(tokens.assign(token="", context=""))
    assert not has_tokens and list(table.columns) == ["row"]
