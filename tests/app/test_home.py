"""app/Home.py through streamlit's AppTest (no browser, no JavaScript): real stores on disk."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading

import numpy as np
import pandas as pd
import pytest
from app_stores import HOME, SITES, make_store
from streamlit.testing.v1 import AppTest

from workbench.analysis.results import Result

# -- helpers ----------------------------------------------------------------------------------


def run_app(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(HOME), default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def no_exception(at: AppTest) -> None:
    assert not at.exception, "\n".join(e.value for e in at.exception)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def selectbox(at: AppTest, label: str):
    found = [s for s in at.selectbox if s.label == label]
    assert len(found) == 1, (
        f"expected one {label!r} selectbox, got {[s.label for s in at.selectbox]}"
    )
    return found[0]


def figures(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as their JSON specs."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(trace: dict, key: str) -> np.ndarray:
    """A trace's x/y as an array (plotly 6 encodes numeric arrays as base64 `bdata`)."""
    value = trace[key]
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return array.reshape(value["shape"]) if "shape" in value else array
    return np.asarray(value)


def page_text(at: AppTest) -> str:
    """Every piece of text the page shows (markdown, alerts, metrics, json, widget options)."""
    parts = [
        e.value for kind in ("markdown", "caption", "title", "subheader") for e in at.get(kind)
    ]
    parts += [e.value for e in [*at.info, *at.warning, *at.error]]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [json.dumps(j.proto.body) for j in at.json]
    parts += [o for s in at.selectbox for o in s.options]
    parts += [d.value.to_csv() for d in at.dataframe]
    return "\n".join(map(str, parts))


# -- a store ----------------------------------------------------------------------------------


def test_page_shows_store_and_metrics(toy_store):
    at = run_app()
    no_exception(at)
    store = selectbox(at, "Store")
    assert store.options == [toy_store.relative]
    assert store.value == toy_store.relative
    shown = metrics(at)
    assert shown["model"] == toy_store.model
    assert shown["dataset"] == "toy-text"
    assert int(shown["rows (tokens)"].replace(",", "")) == toy_store.n_rows
    assert int(shown["examples"].replace(",", "")) == toy_store.n_examples
    assert int(shown["sites"]) == len(SITES)
    assert at.query_params["store"] == toy_store.relative


def test_site_table_holds_planted_max(toy_store):
    at = run_app()
    no_exception(at)
    (table,) = [
        d.value for d in at.dataframe if "site" in d.value.columns
    ]  # exactly one site table
    table = table.set_index("site")
    assert list(table.index) == SITES
    planted = table.loc[toy_store.planted_site]
    assert planted["max |a|"] == pytest.approx(abs(toy_store.planted_value))
    assert planted["top dim"] == toy_store.planted_dim
    for site in SITES:
        assert table.loc[site, "max |a|"] == pytest.approx(toy_store.max_abs[site].max(), rel=1e-6)
        assert table.loc[site, "width"] == toy_store.max_abs[site].size
        if site != toy_store.planted_site:
            assert table.loc[site, "max |a|"] < abs(toy_store.planted_value) / 10
    # the planted dim dominates that site's variance
    assert planted["top-dim variance share"] > 0.5


def test_depth_chart_traces(toy_store):
    at = run_app()
    no_exception(at)
    depth = figures(at)[0]
    traces = {t["name"]: t for t in depth["data"]}
    assert set(traces) == {"mean norm", "rms", "max |a|"}
    for trace in traces.values():
        assert list(values(trace, "x")) == SITES
        assert np.all(np.isfinite(values(trace, "y"))) and np.all(values(trace, "y") > 0)
    max_abs = dict(zip(SITES, values(traces["max |a|"], "y"), strict=True))
    assert max_abs[toy_store.planted_site] == pytest.approx(abs(toy_store.planted_value))
    yaxis = depth["layout"]["yaxis"]
    assert yaxis["type"] == "log"
    # ticks spelled out (plotly's default log ticks label both 0.5 and 5 as "5")
    assert yaxis["tickformat"] == "~g" and yaxis["dtick"] == "D2"  # 1..321: 2.5 decades


def test_site_query_param_selects_bar_chart(toy_store):
    at = run_app({"store": toy_store.relative, "site": toy_store.planted_site})
    no_exception(at)
    assert selectbox(at, "Site").value == toy_store.planted_site
    bars = figures(at)[1]
    assert toy_store.planted_site in bars["layout"]["title"]["text"]
    (trace,) = bars["data"]
    assert trace["type"] == "bar"
    y = values(trace, "y")
    np.testing.assert_allclose(y, toy_store.max_abs[toy_store.planted_site], rtol=1e-6)
    assert int(np.argmax(y)) == toy_store.planted_dim
    assert list(values(trace, "x")) == list(range(y.size))
    assert at.query_params["site"] == toy_store.planted_site


def test_site_defaults_to_last_and_unknown_site_falls_back(toy_store):
    for query in ({}, {"site": "blocks.99.nope"}):
        at = run_app(query)
        no_exception(at)
        assert selectbox(at, "Site").value == SITES[-1]
        bars = figures(at)[1]
        np.testing.assert_allclose(
            values(bars["data"][0], "y"), toy_store.max_abs[SITES[-1]], rtol=1e-6
        )
        assert at.query_params["site"] == SITES[-1]


def test_choosing_a_site_updates_chart_and_url(toy_store):
    at = run_app()
    selectbox(at, "Site").select(SITES[0]).run()
    no_exception(at)
    assert at.query_params["site"] == SITES[0]
    bars = figures(at)[1]
    assert SITES[0] in bars["layout"]["title"]["text"]
    np.testing.assert_allclose(values(bars["data"][0], "y"), toy_store.max_abs[SITES[0]], rtol=1e-6)


def test_store_query_param_selects_store(runs_dir):
    alpha = make_store(runs_dir, "stores/alpha", model="alpha-model", n_examples=4, seed=1)
    beta = make_store(runs_dir, "stores/beta", model="beta-model", n_examples=7, seed=2)
    os.utime(alpha.path / "manifest.json", (4e9, 4e9))  # the newer: the richest of equals
    at = run_app()
    no_exception(at)
    assert selectbox(at, "Store").options == [alpha.relative, beta.relative]
    assert metrics(at)["model"] == "alpha-model"

    at = run_app({"store": beta.relative})
    no_exception(at)
    assert selectbox(at, "Store").value == beta.relative
    assert metrics(at)["model"] == "beta-model"
    assert int(metrics(at)["rows (tokens)"]) == beta.n_rows
    assert at.query_params["store"] == beta.relative

    selectbox(at, "Store").select(alpha.relative).run()
    no_exception(at)
    assert metrics(at)["model"] == "alpha-model"
    assert at.query_params["store"] == alpha.relative


def test_without_a_store_in_the_url_the_richest_opens(runs_dir):
    """The store with the most saved analyses, though it has fewer rows and comes last in path
    order; its choice goes to the URL, and a link naming another store still wins."""
    make_store(runs_dir, "stores/alpha", model="alpha-model", n_examples=12, seed=1)
    make_store(runs_dir, "stores/zeta", model="zeta-model", n_examples=4, seed=2)
    frame = pd.DataFrame({"metric": ["dimension"], "value": [3.0]})
    for analysis in ("twonn", "mle"):
        Result(analysis, frame).save(runs_dir / "results" / analysis / "zeta" / SITES[0])
    at = run_app()
    no_exception(at)
    assert selectbox(at, "Store").value == "stores/zeta" == at.query_params["store"]
    assert metrics(at)["model"] == "zeta-model"
    at = run_app({"store": "stores/alpha"})
    assert selectbox(at, "Store").value == "stores/alpha" == at.query_params["store"]


def test_large_store_row_count_formatted(runs_dir):
    store = make_store(runs_dir, "big", n_examples=200, chunks=3)  # 1,200 rows
    at = run_app()
    no_exception(at)
    assert metrics(at)["rows (tokens)"] == f"{store.n_rows:,}" == "1,200"


# -- empty, incomplete ------------------------------------------------------------------------


def test_empty_runs_dir_shows_the_command_that_fills_it(runs_dir):
    at = run_app()
    no_exception(at)
    assert len(at.info) == 1
    assert f"`{runs_dir.resolve()}` is empty" in at.info[0].value
    assert f"workbench demo --no-app --out {runs_dir.resolve()}" in at.info[0].value
    assert not at.selectbox and not at.metric and not at.get("plotly_chart")


def test_missing_runs_dir_shows_the_command_that_fills_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "never-made"))
    at = run_app()
    no_exception(at)
    assert f"workbench demo --no-app --out {tmp_path / 'never-made'}" in at.info[0].value


def test_runs_dir_without_stores_says_how_to_capture_one(runs_dir):
    (runs_dir / "notes.txt").write_text("not a store")
    at = run_app()
    no_exception(at)
    assert [i.value for i in at.info] == [
        f"No stores under `{runs_dir.resolve()}` yet. Run `workbench demo`, or `workbench "
        "capture --model minilm --sites 'blocks.*.hook_resid_post' --dataset text --out "
        f"{runs_dir.resolve()}/stores/NAME`."
    ]


def test_incomplete_store_warned_and_not_offered(runs_dir):
    done = make_store(runs_dir, "stores/done", model="done-model")
    make_store(runs_dir, "stores/partial", model="partial-model", finalize=False)
    for query in ({}, {"store": "stores/partial"}):
        at = run_app(query)
        no_exception(at)
        assert len(at.warning) == 1
        assert "stores/partial" in at.warning[0].value
        assert "Incomplete" in at.warning[0].value
        assert selectbox(at, "Store").options == [done.relative]
        assert metrics(at)["model"] == "done-model"
        assert at.query_params["store"] == done.relative


def test_only_incomplete_stores(runs_dir):
    make_store(runs_dir, "stores/partial", finalize=False)
    at = run_app({"store": "stores/partial"})
    no_exception(at)
    assert "stores/partial" in at.warning[0].value
    assert not at.selectbox and not at.metric and not at.get("plotly_chart")


def test_unreadable_manifest_reported_not_offered(runs_dir):
    good = make_store(runs_dir, "stores/good")
    broken = runs_dir / "stores" / "broken"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{ not json")
    at = run_app({"store": "stores/broken"})
    no_exception(at)
    assert selectbox(at, "Store").options == [good.relative]
    assert metrics(at)["model"] == good.model
    assert len(at.error) == 1
    assert "stores/broken" in at.error[0].value and "not valid JSON" in at.error[0].value
    # an unreadable store is not called an interrupted capture
    assert all("stores/broken" not in w.value for w in at.warning)


def test_corrupt_store_shows_error_not_traceback(runs_dir):
    store = make_store(runs_dir, "stores/corrupt")
    shard = next((store.path).rglob("*.npy"))
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size - 8)
    at = run_app()
    no_exception(at)
    assert len(at.error) == 1
    assert "truncated" in at.error[0].value and shard.name in at.error[0].value
    assert not at.metric and not at.get("plotly_chart")
    # the other stores stay reachable
    assert selectbox(at, "Store").options == [store.relative]


# -- the runs directory is the only door ------------------------------------------------------

_watch: list[str] = []  # real paths nothing may touch while a test watches them
_touched: list[tuple[str, str]] = []
_guard = threading.local()


def _audit(event: str, args: tuple) -> None:
    if not _watch or event not in ("open", "os.scandir", "os.listdir") or not args:
        return
    if getattr(_guard, "busy", False) or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    _guard.busy = True
    try:
        real = os.path.realpath(os.fsdecode(args[0]))
        if any(real == w or real.startswith(w + os.sep) for w in _watch):
            _touched.append((event, real))
    except (OSError, ValueError):
        pass
    finally:
        _guard.busy = False


sys.addaudithook(_audit)  # audit hooks cannot be removed; it is idle unless `_watch` is set


@pytest.fixture
def outside_store(tmp_path, runs_dir):
    """A complete store outside the runs dir (a sibling), watched for any file access."""
    outside = make_store(tmp_path / "outside", "store", model="outside-secret-model")
    (runs_dir / "stores").mkdir(exist_ok=True)
    (runs_dir / "stores" / "link").symlink_to(outside.path, target_is_directory=True)
    _watch.append(os.path.realpath(outside.path))
    _touched.clear()
    yield outside
    _watch.clear()


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "dotdot-inside"])
def test_store_param_cannot_escape_runs_dir(toy_store, outside_store, how):
    escape = {
        "dotdot": "../outside/store",
        "absolute": str(outside_store.path),
        "symlink": "stores/link",
        "dotdot-inside": "stores/../../outside/store",
    }[how]
    at = run_app({"store": escape})
    no_exception(at)
    assert _touched == [], f"the page touched the outside store: {_touched}"
    assert selectbox(at, "Store").options == [toy_store.relative]
    assert at.query_params["store"] == toy_store.relative
    assert metrics(at)["model"] == toy_store.model
    assert "outside-secret" not in page_text(at)


def test_audit_hook_sees_store_reads(runs_dir):
    """The escape test's watcher does catch a page reading a watched store."""
    store = make_store(runs_dir, "stores/watched", model="watched-model", seed=5)
    _watch.append(os.path.realpath(store.path))
    _touched.clear()
    try:
        at = run_app()
    finally:
        _watch.clear()
    no_exception(at)
    assert any(path.endswith("manifest.json") for _event, path in _touched), _touched
