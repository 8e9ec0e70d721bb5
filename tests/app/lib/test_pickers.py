"""`workbench_app.lib.pickers`: an empty runs directory says the one command that fills it; a
page with nothing to show says how to make it and stops; the store picker keeps its choice in
the URL (without one, the richest store) and hands back the store resolved inside the runs
directory. AppTest on tiny scripts over real stores (tests/app/app_stores.py)."""

from __future__ import annotations

import ast
import os

import pandas as pd
from app_stores import SITES, make_store
from streamlit.testing.v1 import AppTest

from workbench.analysis.results import Result
from workbench_app.lib.pickers import richest_model
from workbench_app.services.runsdir import fill_command

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
    os.utime(runs_dir / "stores/b/manifest.json", (4e9, 4e9))  # the newest capture
    at = run(store_script)  # no choice in the URL: the richest store (equal but for the time)
    assert shown(at)["name"] == "stores/b" and at.query_params["store"] == "stores/b"
    assert at.selectbox[0].options == ["stores/a", "stores/b", "stores/c"]  # path order
    frame = pd.DataFrame({"metric": ["dimension"], "value": [3.0]})
    Result("twonn", frame).save(runs_dir / "results/twonn/a" / SITES[0])
    at = run(store_script)  # a saved analysis outranks the newer capture
    assert shown(at)["name"] == "stores/a" and at.query_params["store"] == "stores/a"
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


def empty_script() -> None:
    """`stop_if_empty` as the pages call it (`?go=1`: as the pages that go on without it)."""
    import streamlit as st

    from workbench_app.lib.pickers import stop_if_empty
    from workbench_app.services.runsdir import runs_root

    empty = stop_if_empty(runs_root(), stop="go" not in st.query_params)
    st.text(f"went on, empty={empty}")


def test_an_empty_runs_dir_says_the_command_that_fills_it(runs_dir):
    (runs_dir / "stores").mkdir()  # an empty folder: still nothing to show
    command = fill_command(runs_dir)
    assert command.startswith("workbench demo --no-app --out ")
    at = run(empty_script)
    (info,) = at.info
    assert f"`{runs_dir.resolve()}` is empty" in info.value
    assert f"```bash\n{command}\n```" in info.value  # a code block: one click copies it
    assert not at.text  # and the page stopped
    at = run(empty_script, go="1")
    assert len(at.info) == 1 and at.text[0].value == "went on, empty=True"
    make_store(runs_dir, "stores/partial", finalize=False)  # a file: not empty any more
    at = run(empty_script)
    assert not at.info and at.text[0].value == "went on, empty=False"


def test_the_model_pages_open_on_the_richest_stores_model(runs_dir):
    make_store(runs_dir, "stores/fsm", model="fsm-lm@1500", seed=1)
    make_store(runs_dir, "stores/toy", model="toy-lm@1000", seed=2)
    os.utime(runs_dir / "stores/fsm/manifest.json", (4e9, 4e9))  # the newer: richer of equals
    models = ["toy-lm", "fsm-lm", "minilm"]
    assert richest_model(runs_dir, models) == "fsm-lm"  # its step dropped
    frame = pd.DataFrame({"metric": ["dimension"], "value": [3.0]})
    Result("twonn", frame).save(runs_dir / "results/twonn/toy" / SITES[0])
    assert richest_model(runs_dir, models) == "toy-lm"
    assert richest_model(runs_dir, ["minilm", "fsm-lm"]) == "fsm-lm"  # no store of toy-lm
    assert richest_model(runs_dir, ["minilm", "mod-add"]) == "minilm"  # none: the first
    assert richest_model(runs_dir / "missing", models) == "toy-lm"
