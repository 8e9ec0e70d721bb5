"""`workbench_app.lib.state`: widgets whose value lives in the URL, through AppTest on a tiny script.

The URL seeds a widget, every move of it sticks and reaches the URL (a widget default computed
from the URL would make Streamlit drop every second move), and a URL value that is not a valid
choice falls back.
"""

from __future__ import annotations

import ast

import pytest
from streamlit.testing.v1 import AppTest

from workbench_app.lib.state import state_key

TIMEOUT = 30


def widgets_script() -> None:
    """One widget of each kind, their values written out as text."""
    import streamlit as st

    from workbench_app.lib.state import (
        url_number_input,
        url_radio,
        url_select_slider,
        url_selectbox,
        url_slider,
        url_text_area,
        url_text_input,
    )

    page = "demo"
    left, _ = st.columns(2)
    values = {
        "store": url_selectbox("Store", ["a", "b", "c", "d"], "store", page=page, container=left),
        "site": url_selectbox(
            "Site", ["s0", "s1", "s2"], "site", page=page, default=lambda wanted: "s2"
        ),
        "n": url_select_slider("Points", [500, 1000, 2000, 5000], "n", page=page, default=2000),
        "map": url_radio("Map", ["pca", "umap", "tsne"], "map", page=page),
        "seed": url_number_input("Seed", "seed", page=page, default=7, min_value=0, max_value=99),
        "coeff": url_slider(
            "Coeff", "coeff", page=page, min_value=-2.0, max_value=2.0, default=1.0
        ),
        "prompt": url_text_input("Prompt", "prompt", page=page, default=lambda _: "the dog"),
        "prompts": url_text_area("Prompts", "prompts", page=page, default="a\nb"),
    }
    st.text(repr(values))


def run(script=widgets_script, **query: str) -> AppTest:
    at = AppTest.from_function(script, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> dict:
    return ast.literal_eval(at.text[0].value)  # the script's repr of plain values


DEFAULTS = {
    "store": "a",
    "site": "s2",
    "n": 2000,
    "map": "pca",
    "seed": 7,
    "coeff": 1.0,
    "prompt": "the dog",
    "prompts": "a\nb",
}


def url(values: dict) -> dict[str, str]:
    return {key: str(value) for key, value in values.items()}


def test_without_a_url_the_defaults_are_shown_and_written_to_the_url():
    at = run()
    assert shown(at) == DEFAULTS
    assert dict(at.query_params) == url(DEFAULTS)


def test_the_url_seeds_every_widget():
    wanted = {
        "store": "c",
        "site": "s0",
        "n": 500,
        "map": "umap",
        "seed": 42,
        "coeff": -1.5,
        "prompt": "",
        "prompts": "x\ny\nz",
    }
    at = run(**url(wanted))
    assert shown(at) == wanted  # ints come back as ints, an empty text as empty
    assert dict(at.query_params) == url(wanted)
    assert at.selectbox[0].value == "c" and at.select_slider[0].value == 500
    assert at.radio[0].value == "umap" and at.number_input[0].value == 42


@pytest.mark.parametrize(
    ("widget", "key", "moves"),
    [
        ("selectbox", "store", ["b", "c", "d", "a"]),
        ("select_slider", "n", [1000, 5000, 500]),
        ("radio", "map", ["umap", "tsne", "pca"]),
        ("number_input", "seed", [3, 4, 99]),
        ("slider", "coeff", [0.5, -2.0, 2.0]),
        ("text_input", "prompt", ["one", "two", ""]),
        ("text_area", "prompts", ["p\nq", "r"]),
    ],
)
def test_every_move_sticks_and_reaches_the_url(widget, key, moves):
    at = run(store="b")
    for value in moves:
        getattr(at, widget)[0].set_value(value).run()
        assert not at.exception
        assert getattr(at, widget)[0].value == value
        assert shown(at)[key] == value
        assert at.query_params[key] == str(value)
    assert shown(at)["store"] == (moves[-1] if key == "store" else "b")  # others left alone


def test_moves_of_one_widget_leave_the_others_where_the_url_put_them():
    at = run(site="s1", n="5000")
    for store in ("b", "c"):
        at.selectbox[0].set_value(store).run()
    at.selectbox[1].set_value("s0").run()
    at.selectbox[1].set_value("s2").run()
    values = shown(at)
    assert (values["store"], values["site"], values["n"]) == ("c", "s2", 5000)
    assert at.query_params["store"] == "c" and at.query_params["site"] == "s2"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"store": "zzz"}, {"store": "a"}),  # not an option: the first one
        ({"site": "s9"}, {"site": "s2"}),  # not an option: the default (a function of it)
        ({"n": "750"}, {"n": 2000}),
        ({"n": "banana"}, {"n": 2000}),
        ({"map": "PCA"}, {"map": "pca"}),
        ({"seed": "banana"}, {"seed": 7}),  # not a number: the default
        ({"seed": "3.5"}, {"seed": 7}),  # not an int
        ({"seed": "1000"}, {"seed": 99}),  # out of range: clamped
        ({"seed": "-4"}, {"seed": 0}),
        ({"coeff": "nan"}, {"coeff": 1.0}),
        ({"coeff": "7"}, {"coeff": 2.0}),
    ],
)
def test_an_invalid_url_value_falls_back(query, expected):
    at = run(**query)
    assert shown(at) == {**DEFAULTS, **expected}
    assert dict(at.query_params) == url({**DEFAULTS, **expected})


def test_the_fallback_function_is_given_the_urls_value():
    def script() -> None:
        import streamlit as st

        from workbench_app.lib.state import url_number_input, url_selectbox

        seen = []

        def fallback(wanted):
            seen.append(wanted)
            return "z" if wanted is None else "y"

        choice = url_selectbox("X", ["x", "y", "z"], "x", page="p", default=fallback)
        number = url_number_input("N", "n", page="p", default=lambda w: 5 if w is None else 6)
        st.text(repr((choice, number, seen)))

    assert ast.literal_eval(run(script).text[0].value) == ("z", 5, [None])
    assert ast.literal_eval(run(script, x="nope", n="no").text[0].value) == ("y", 6, ["nope"])
    assert ast.literal_eval(run(script, x="x").text[0].value) == ("x", 5, [])


def test_options_that_change_under_a_widget_reseed_it():
    """A choice that is no longer offered (another store has other sites) is seeded again: from
    the URL's value when that is offered, else from the default; a choice still offered stays."""

    def script() -> None:
        import streamlit as st

        from workbench_app.lib.state import url_number_input, url_selectbox

        sites = {"A": ["a0", "a1", "shared"], "B": ["b0", "shared", "b2"], "C": ["c0"]}
        store = url_selectbox("Store", list(sites), "store", page="p")
        site = url_selectbox("Site", sites[store], "site", page="p", default=sites[store][-1])
        size = {"A": 9, "B": 2, "C": 5}[store]
        row = url_number_input("Row", "row", page="p", default=0, min_value=0, max_value=size)
        st.text(repr((store, site, row)))

    at = run(script, store="A", site="a1", row="8")
    assert ast.literal_eval(at.text[0].value) == ("A", "a1", 8)
    at.selectbox[0].set_value("B").run()  # a1 is not a site of B, nor the URL's (a1): the last
    assert ast.literal_eval(at.text[0].value) == (
        "B",
        "b2",
        2,
    )  # and row 8 > 2: the URL's 8 clamped
    at.selectbox[1].set_value("shared").run()
    at.selectbox[0].set_value("A").run()  # still offered: stays
    assert ast.literal_eval(at.text[0].value) == ("A", "shared", 2)
    at.selectbox[0].set_value("C").run()  # C's only site: c0
    assert ast.literal_eval(at.text[0].value) == ("C", "c0", 2)
    at.selectbox[0].set_value("A").run()  # the second move sticks too; c0 is not A's: the last
    assert ast.literal_eval(at.text[0].value) == ("A", "shared", 2)
    assert dict(at.query_params) == {"store": "A", "site": "shared", "row": "2"}


def test_pages_keep_their_widgets_apart():
    """Session state is shared by every page of the app: the keys are namespaced by page."""
    assert state_key("home", "store") != state_key("explore", "store")
    assert "home" in state_key("home", "store") and "store" in state_key("home", "store")


def test_a_page_can_keep_no_choice_when_there_are_no_options():
    def script() -> None:
        import streamlit as st

        from workbench_app.lib.state import url_selectbox

        st.text(repr(url_selectbox("X", [], "x", page="p")))

    at = run(script, x="kept")
    assert at.text[0].value == "None" and at.query_params["x"] == "kept"


def refusing_script() -> None:
    """A picker that refuses an unknown URL value with a warning, and one that falls back
    silently."""
    import streamlit as st

    from workbench_app.lib.state import url_selectbox

    a = url_selectbox("A", ["x", "y"], "a", page="p", refuse=lambda w: f"No `{w}`; valid: x, y.")
    b = url_selectbox("B", [1, 2, 3], "b", page="p", refuse="not a choice", default=3)
    c = url_selectbox("C", ["x", "y"], "c", page="p")
    st.text(repr((a, b, c)))


def test_a_refused_url_value_is_warned_about_once_and_falls_back():
    at = run(refusing_script, a="zzz", b="2", c="zzz")
    assert [w.value for w in at.warning] == ["No `zzz`; valid: x, y."]  # b is valid, c silent
    assert ast.literal_eval(at.text[0].value) == ("x", 2, "x")
    assert dict(at.query_params) == {"a": "x", "b": "2", "c": "x"}
    at.run()  # the URL now holds a valid choice: no warning again
    assert not at.warning
    at = run(refusing_script, b="7")  # int options are compared as text
    assert [w.value for w in at.warning] == ["not a choice"]
    assert ast.literal_eval(at.text[0].value) == ("x", 3, "x")


def test_refuse_url_value_for_values_no_widget_holds():
    def script() -> None:
        import streamlit as st

        from workbench_app.lib.state import refuse_url_value

        st.text(repr(refuse_url_value("cell", ["a,b", "a,c"], lambda w: f"no cell {w}")))

    at = run(script)
    assert at.text[0].value == "None" and not at.warning
    at = run(script, cell="a,c")
    assert at.text[0].value == "'a,c'" and not at.warning
    at = run(script, cell="b,a")
    assert at.text[0].value == "None" and [w.value for w in at.warning] == ["no cell b,a"]


def test_url_selection_writes_the_selected_points_to_the_url_and_drops_an_empty_one():
    def script() -> None:
        import streamlit as st

        from workbench_app.lib.state import url_selection

        points = st.query_params.get("points")
        if points is not None:  # what a chart's selection state holds
            rows = [{"customdata": [int(p)]} for p in points.split(",") if p]
            st.session_state["chart"] = {"selection": {"points": rows}}

        def encode(found: list[dict]) -> str | None:
            return ",".join(str(p["customdata"][0]) for p in found) or None

        url_selection("sel", "chart", encode)
        st.text(repr(st.query_params.get("sel")))

    assert run(script, points="3,5").text[0].value == "'3,5'"
    assert run(script, points="", sel="3,5").text[0].value == "None"  # cleared: dropped
    assert run(script, sel="1").text[0].value == "None"  # no chart state: nothing selected
