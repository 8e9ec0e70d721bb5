"""`workbench_app.lib.similarity_view`: a map's cells as selectable markers read back into the
URL's `ROW,COLUMN`, refused cells named with the valid ones, and the selected pair's table,
spectra and links."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from workbench_app.lib.similarity_view import (
    cell_of,
    cell_refusal,
    cell_texts,
    cell_value,
    checkpoint_links,
    convergence_figure,
    cross_links,
    cross_pair,
    encode_cell,
    heatmap,
    layer_links,
    pair_table,
    plain_numbers,
    rows_key,
    spectra_figure,
    split_cell,
)

MAP = {"matrix": [[1.0, 0.5], [0.25, 1.0], [0.1, 0.2]], "y": [0, 10, 20], "x": ["s0", "s1"]}


@pytest.mark.parametrize(
    ("point", "cell"),
    [
        ({"customdata": ["a", "b", 0.5]}, ("a", "b")),
        ({"customdata": {"0": 10, "1": "s1", "2": 0.3}}, ("10", "s1")),  # an index-keyed dict
        ({"customdata": [None, "b"]}, None),
        ({"x": 1, "y": 2}, None),  # the heatmap's own point: no customdata
    ],
)
def test_cell_of_reads_a_markers_customdata(point, cell):
    assert cell_of(point) == cell


def test_encode_cell_takes_the_first_cell_of_a_box():
    points = [{"x": 0}, {"customdata": ["10", "s0", 0.25]}, {"customdata": ["20", "s1", 0.2]}]
    assert encode_cell(points) == "10,s0"
    assert encode_cell([{"x": 0}]) is None and encode_cell([]) is None
    assert split_cell("10,s0") == ("10", "s0")


def test_cells_of_a_map_and_why_another_is_refused():
    assert cell_texts(["0", "10"], ["s0", "s1"]) == ["0,s0", "0,s1", "10,s0", "10,s1"]
    why = cell_refusal("step_cell", ["0", "10"], ["s0", "s1"])
    assert why("5,s0") == (
        "No cell `5,s0` in this map (step_cell=ROW,COLUMN): rows are 0, 10; columns are s0, s1. "
        "Click a cell to pick one."
    )
    assert cell_value(MAP, ("10", "s0")) == 0.25 and cell_value(MAP, ("20", "s1")) == 0.2


def test_heatmap_has_a_marker_per_cell_and_outlines_the_selected_one():
    fig = heatmap(MAP, "cka", "t", ("site", "step"), ("10", "s1"), "%{customdata[0]}")
    heat, cells = fig.data
    assert heat.type == "heatmap" and cells.type == "scatter"
    assert [tuple(c[:2]) for c in cells.customdata] == [
        (r, c) for r in ("0", "10", "20") for c in ("s0", "s1")
    ]
    np.testing.assert_allclose([c[2] for c in cells.customdata], np.ravel(MAP["matrix"]))
    (box,) = fig.layout.shapes
    assert (box.x0, box.x1, box.y0, box.y1) == (0.5, 1.5, 0.5, 1.5)  # column 1, row 1
    assert fig.layout.coloraxis.colorbar.title.text == "cka"
    assert not heatmap(MAP, "cka", "t", ("a", "b"), None, "h").layout.shapes


def numbers():
    def comparison(similarity, correlations, **details):
        corr = None if correlations is None else np.array(correlations)
        return SimpleNamespace(similarity=similarity, correlations=corr, details=details)

    return plain_numbers(
        {
            "svcca": comparison(0.9, [0.99, 0.8], kept=[3, 4]),
            "cca": comparison(0.8, [0.95, 0.7, 0.6], rank=[5, 6]),
            "cka": comparison(0.7, None),
        }
    )


def test_pair_table_and_spectra():
    found = numbers()
    assert found["svcca"]["correlations"] == [0.99, 0.8] and found["cka"]["correlations"] is None
    table = pair_table(found, "cca")
    assert list(table["measure"]) == ["svcca", "cca", "cka"]
    assert list(table["in the map"]) == ["", "yes", ""]
    assert list(table["directions"]) == ["3x4", "", ""] and list(table["rank"]) == ["", "5x6", ""]
    fig = spectra_figure(found)
    assert [list(t.x) for t in fig.data] == [[1, 2], [1, 2, 3]]
    empty = {m: {**n, "correlations": None} for m, n in found.items()}
    assert spectra_figure(empty) is None


def test_convergence_lines_one_per_site():
    conv = {"matrix": MAP["matrix"], "steps": [0, 10, 20], "sites": ["s0", "s1"]}
    fig = convergence_figure(conv, "cka")
    assert [t.name for t in fig.data] == ["s0", "s1"]
    assert list(fig.data[1].y) == [0.5, 1.0, 0.2] and fig.layout.xaxis.type == "log"


def params(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {"page": parts.path, **{k: v[0] for k, v in parse_qs(parts.query).items()}}


def test_links_open_explore_at_the_cells_sites():
    assert [params(u) for _, u in layer_links("stores/a", ("s0", "s1"))] == [
        {"page": "Explore", "store": "stores/a", "site": "s0"},
        {"page": "Explore", "store": "stores/a", "site": "s1"},
    ]
    steps = [params(u) for _, u in checkpoint_links("c/step10", 10, "s1", "c/step20", 20)]
    assert steps[2] == {"page": "Explore", "store": "c/step10", "site": "s1", "compare": "c/step20"}
    assert [text for text, _ in cross_links("a", "b", ("s0", "s1"))] == [
        "Explore `s0` of `a`",
        "Explore `s1` of `b`",
    ]
    assert params(cross_links("a", "b", ("s0", "s0"))[2][1])["compare"] == "b"


def store(n_rows: int, dataset: str = "digits", n_examples: int = 256) -> dict:
    """A `stores_by_path` entry, as far as the rows go."""
    spec = {"dataset": dataset, "n_examples": n_examples, "max_length": 128, "positions": "all"}
    return {"n_rows": n_rows, "spec": spec}


def test_rows_key_is_the_row_count_and_the_capture_settings_that_fix_the_rows():
    assert rows_key(store(256)) == rows_key(store(256))
    assert rows_key(store(256)) != rows_key(store(255))  # another tokenizer, say
    assert rows_key(store(256)) != rows_key(store(256, dataset="text"))  # as many, other rows
    assert rows_key(store(256)) != rows_key(store(256, n_examples=128))


def test_the_model_x_model_pair_opens_on_the_richest_two_holding_the_same_rows():
    # richest first, as `richest_first` ranks them; the demo's shape: the richest LM stands
    # alone on its rows, two digits models share theirs
    stores = {
        "stores/toy-lm": store(3832, "grammar-lm"),
        "stores/minilm": store(19075, "text"),
        "stores/digits-cnn": store(256),
        "stores/digits-mlp": store(256),
        "stores/digits-small": store(128, n_examples=128),
        "sweep/toy@0": store(2446, "grammar-lm", 160),
        "sweep/toy@8": store(2446, "grammar-lm", 160),
    }
    ranked = list(stores)
    assert cross_pair(ranked, stores) == ("stores/digits-cnn", "stores/digits-mlp")
    assert cross_pair(ranked, stores, a="sweep/toy@8") == ("sweep/toy@8", "sweep/toy@0")
    # an A of the URL that no other store shares rows with: B is the richest other one
    assert cross_pair(ranked, stores, a="stores/digits-small") == (
        "stores/digits-small",
        "stores/toy-lm",
    )
    alone = {name: stores[name] for name in ("stores/toy-lm", "stores/minilm")}
    assert cross_pair(list(alone), alone) == ("stores/toy-lm", "stores/minilm")  # none shares
    assert cross_pair(["stores/toy-lm"], alone) == ("stores/toy-lm", "stores/toy-lm")
