"""`workbench_app.lib.pickers`: a page with nothing to show says how to make it and stops; the
store picker keeps its choice in the URL and hands back the store resolved inside the runs
directory. AppTest on tiny scripts over real stores (tests/app/app_stores.py)."""

from __future__ import annotations

import ast

from app_stores import SITES, make_store
from streamlit.testing.v1 import AppTest

TIMEOUT = 30


def store_script() -> None:
    """The store picker as the pages use it, its result written out as text."""
    import streamlit as st

    from workbench_app.lib.pickers import complete_stores, pick_store
    from workbench_app.services.runsdir import runs_root

    root = runs_root()
    stores = complete_stores(root)
    store = pick_store(root, stores, page="demo")
    b = pick_store(root, stores, page="demo", label="Store B", key="b", default=sorted(stores)[-1])
    st.text(
        repr(
            {
                "name": store.name,
                "path": str(store.path.relative_to(root)),
                "inside": store.path.is_relative_to(root),
                "sites": store.sites,
                "model": store.spec["model"],
                "fresh": store.mtime == (store.path / "manifest.json").stat().st_mtime,
                "b": b.name,
            }
        )
    )


def run(script, **query: str) -> AppTest:
    at = AppTest.from_function(script, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> dict:
    return ast.literal_eval(at.text[0].value)


def test_without_stores_the_page_says_how_to_make_one_and_stops(runs_dir):
    make_store(runs_dir, "stores/partial", finalize=False)  # incomplete: not offered
    at = run(store_script)
    assert len(at.info) == 1 and not at.selectbox and not at.text
    assert "No complete stores" in at.info[0].value and "workbench capture" in at.info[0].value
    assert str(runs_dir.resolve()) in at.info[0].value


def test_the_store_comes_from_the_url_resolved_inside_the_runs_dir(runs_dir):
    for i, name in enumerate(("stores/b", "stores/a", "stores/c")):
        make_store(runs_dir, name, model=f"model-{name[-1]}", seed=i)
    at = run(store_script)
    assert shown(at)["name"] == "stores/a" and at.query_params["store"] == "stores/a"
    assert at.selectbox[0].options == ["stores/a", "stores/b", "stores/c"]  # path order
    at = run(store_script, store="stores/c")
    assert shown(at) == {
        "name": "stores/c",
        "path": "stores/c",
        "inside": True,
        "sites": SITES,
        "model": "model-c",
        "fresh": True,
        "b": "stores/c",  # its default: the last store
    }
    at.selectbox[0].set_value("stores/b").run()
    assert shown(at)["model"] == "model-b" and at.query_params["store"] == "stores/b"


def test_a_store_outside_the_runs_dir_is_never_picked(runs_dir, tmp_path):
    make_store(runs_dir, "stores/toy")
    outside = make_store(tmp_path / "elsewhere", "store")
    for escape in ("../elsewhere/store", str(outside.path)):
        at = run(store_script, store=escape)
        assert shown(at)["name"] == "stores/toy" and at.query_params["store"] == "stores/toy"


def test_inside_or_stop_names_what_lies_outside():
    def script() -> None:
        import streamlit as st

        from workbench_app.lib.pickers import inside_or_stop
        from workbench_app.services.runsdir import runs_root

        path = inside_or_stop(st.query_params["to"], runs_root(), "result")
        st.text(str(path))

    at = run(script, to="../../etc")
    assert [e.value for e in at.error] == ["That result is outside the runs directory."]
    assert not at.text
    at = run(script, to="results/x")
    assert not at.error and at.text[0].value.endswith("results/x")


def test_require_passes_options_through_and_stops_without():
    def script() -> None:
        import streamlit as st

        from workbench_app.lib.pickers import require

        found = require(
            st.query_params.get("found", "").split(",") if "found" in st.query_params else [],
            "make some",
        )
        st.text(repr(found))

    at = run(script)
    assert [i.value for i in at.info] == ["make some"] and not at.text
    at = run(script, found="a,b")
    assert not at.info and ast.literal_eval(at.text[0].value) == ["a", "b"]
