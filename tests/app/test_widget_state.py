"""Every page's URL-backed pickers keep every move (AppTest only, small data made per page).

A widget whose default is computed from the URL changes identity after each move, and Streamlit
then drops every second move (pick B, then C: the page stays on B). The pages keep such widgets'
state under a session-state key instead (`workbench_app.lib.state`). Here, for each page, pickers
with at least three options (and some number inputs) are moved twice, to two values other than
the first, and both moves must stick: in the widget and in the URL.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from app_stores import HOME, SITES, make_store
from streamlit.testing.v1 import AppTest

from workbench.analysis.results import Result
from workbench.store import StoreWriter
from workbench.zoo import ZOO_ENV
from workbench_app.services.runsdir import RUNS_ENV

PAGES = HOME.parent / "pages"
STORES = ["stores/a", "stores/b", "stores/c"]


def three_stores(runs: Path) -> None:
    for seed, relative in enumerate(STORES):
        make_store(runs, relative, seed=seed)


def one_store(runs: Path) -> None:
    make_store(runs, "stores/toy")


def overview_results(runs: Path) -> None:
    """`twonn` headlines of three stores (what the Overview offers)."""
    for i, store in enumerate(("alpha", "beta", "gamma")):
        for j, site in enumerate(SITES):
            frame = pd.DataFrame({"metric": ["dimension"], "value": [3.0 + i + j]})
            Result("twonn", frame, headline={"dimension": 3.0 + i + j}).save(
                runs / "results" / "twonn" / store / site
            )


def landscape_results(runs: Path) -> None:
    """Three `intrinsic-dim` results as a sweep saves them (the numbers made up)."""
    dims = [5, 50, 200]
    for width in (8, 16, 32):
        frame = pd.DataFrame(
            {
                "projection": "fastfood",
                "d": dims,
                "seed": 0,
                "metric": "accuracy",
                "value": [0.3, 0.8, 0.95],
            }
        )
        headline = {
            "model": f"mlp-w{width}",
            "D": 100 * width,
            "d_int90": 200,
            "baseline": 0.96,
            "baseline_kind": "direct",
            "threshold90": 0.864,
            "metric": "accuracy",
            "projection": "fastfood",
        }
        Result("intrinsic-dim", frame, headline=headline).save(runs / "intrinsic-dim" / f"w{width}")


def probe_results(runs: Path) -> None:
    """Three probe results over the same sites (multi-site, so each is offered as itself)."""
    for k, label in enumerate(("pos", "topic", "depth")):
        rows = [
            {"site": site, "label": label, "metric": metric, "value": value}
            for i, site in enumerate(SITES)
            for metric, value in (
                ("accuracy", 0.5 + 0.1 * i + 0.01 * k),
                ("majority_baseline", 0.3),
            )
        ]
        Result("probe", pd.DataFrame(rows)).save(runs / "results" / "probe" / label)


def batch_results(runs: Path) -> None:
    """A batch folder (plan.json, results.parquet) of one analysis with three scalar metrics."""
    folder = runs / "sweeps" / "toy"
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text(json.dumps({"name": "toy", "cells": []}))
    rows = [
        {"cell": f"c{i}", "entry": "stats", "analysis": "stats", "model": "toy", "step": 10,
         "dataset": "text", "site": site, "metric": metric, "value": float(i + j)}
        for i, site in enumerate(SITES)
        for j, metric in enumerate(("mean", "rms", "max"))
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(folder / "results.parquet")


def sae_reports(runs: Path) -> None:
    """One small SAE (trained through the CLI) and three feature reports of it."""
    from workbench.cli.main import main

    site = SITES[0]
    rng = np.random.default_rng(0)
    n, seq = 480, 8
    x = rng.standard_normal((n, 16)).astype(np.float32)
    store = runs / "stores" / "toy"
    spec = {"model": "toy", "dataset": "toy", "sites": [site], "dtype": "float32"}
    writer = StoreWriter(store, spec)
    writer.append(
        {site: x},
        np.arange(n) % 40,
        np.arange(n) // seq,
        np.arange(n) % seq,
        row_labels={"tag": (x[:, 0] > 0.5).astype(np.int64)},
    )
    writer.finalize()
    sae = runs / "sae" / "toy"
    train = ["sae", "train", "--store", str(store), "--site", site, "--d-sae", "32", "--k", "4"]
    assert main([*train, "--batch-size", "64", "--epochs", "1", "--out", str(sae)]) == 0
    for name in ("features-a", "features-b", "features-c"):
        args = ["sae", "features", "--sae", str(sae), "--store", str(store), "--html", "none"]
        assert main([*args, "--out", str(sae / name)]) == 0


def codebook_models(runs: Path) -> None:
    """A small fsm-lm codebook model (as tests/app/test_browser_codebook.py trains it), saved
    three times."""
    from analyses.codebook.train import TrainConfig, train_codebook_model

    out = runs / "codebooks" / "fsm-lm"
    train_codebook_model(
        "fsm-lm", "blocks.*.hook_resid_post", n_codes=128, k=1,
        cfg=TrainConfig(steps=20, trainable="all"), n_train=100, n_eval=20, out=out,
    )  # fmt: skip
    for copy in ("fsm-lm-b", "fsm-lm-c"):
        shutil.copytree(out, out.parent / copy)


def prompt_sae(runs: Path) -> None:
    """The identity SAE of toy-lm's width, saved as if trained on its blocks.1 residual stream
    (the Prompt page runs it on the quick zoo's toy-lm)."""
    from analyses.sae import identity_sae, save_sae

    meta = {"site": "blocks.1.hook_resid_post", "model": "toy-lm"}
    save_sae(identity_sae(128), runs / "sae" / "identity", meta)


def token_index(shown: str) -> int:
    """A token's index from its option as the Prompt page shows it ("3: 'cat'")."""
    return int(shown.split(":")[0])


def finished_jobs(runs: Path) -> None:
    """Three finished capture jobs, as their folders under runs/jobs read (no process runs)."""
    for i in range(3):
        folder = runs / "jobs" / f"20260101-00000{i}-capture-000{i}"
        folder.mkdir(parents=True)
        record = {"id": folder.name, "kind": "capture", "title": f"capture {i}",
                  "commands": [["true"]], "cwd": str(folder), "out": f"stores/s{i}",
                  "fields": {}, "created": 1.7e9 + i, "pid": None, "pid_created": None}  # fmt: skip
        (folder / "job.json").write_text(json.dumps(record))
        (folder / "exit.json").write_text(json.dumps({"exit_code": 0, "finished": 1.7e9 + 9}))
        (folder / "log.txt").write_text("done\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Callable[[Callable[[Path], None]], Path]:
    """A runs dir made by a `make` function, made once per module (the pages only read it)."""
    made: dict[Callable[[Path], None], Path] = {}

    def get(make: Callable[[Path], None]) -> Path:
        if make not in made:
            made[make] = tmp_path_factory.mktemp(make.__name__)
            make(made[make])
        return made[make]

    return get


@dataclass
class Case:
    page: str  # file under app/ (Home.py) or app/pages/
    make: Callable[[Path], None]  # writes the page's data into the runs dir
    label: str  # the picker's label
    key: str  # its URL parameter
    widget: str = "selectbox"
    timeout: float = 60
    values: tuple = ()  # the two moves of a number input (a picker's come from its options)
    zoo: bool = False  # the page reads the (quick-built) zoo
    parse: Callable[[str], Any] | None = None  # an option's value from its shown text (format_func)


CASES = [
    Case("Home.py", three_stores, "Store", "store"),
    Case("Home.py", one_store, "Site", "site"),
    Case("0_Overview.py", overview_results, "Model (store)", "store"),
    Case("2_Geometry.py", three_stores, "Store", "store", timeout=120),
    Case("2_Geometry.py", one_store, "Rows used by TwoNN / MLE", "samples", "select_slider"),
    Case("3_Landscape.py", landscape_results, "Result", "result"),
    Case("4_Similarity.py", three_stores, "Store", "store"),
    Case("4_Similarity.py", three_stores, "Measure", "measure"),
    Case("5_Collapse_and_probes.py", probe_results, "Probe result", "probe"),
    Case("6_Massive.py", three_stores, "Store", "store", timeout=120),
    Case("6_Massive.py", one_store, "Example", "example", "number_input", values=(3, 7)),
    Case("7_SAE_features.py", sae_reports, "Feature report", "features"),
    Case("7_SAE_features.py", sae_reports, "Latent", "latent", "number_input", values=(5, 9)),
    Case("10_Codebooks.py", codebook_models, "Codebook model", "model", timeout=180),
    Case("10_Codebooks.py", codebook_models, "Code", "code", "number_input", 180, (5, 9)),
    Case("8_Prompt.py", prompt_sae, "Token", "token", timeout=120, zoo=True, parse=token_index),
    Case("11_Batch.py", batch_results, "Metric", "metric"),
    Case("1_Model.py", one_store, "Model", "model", timeout=120, zoo=True),
    Case(
        "1_Model.py", one_store, "Prompt", "prompt", "text_input", 120, ("a dog", "our soup"), True
    ),
    Case("9_Steering.py", one_store, "Direction", "direction", timeout=120, zoo=True),
    Case("9_Steering.py", one_store, "Site", "site", timeout=120, zoo=True),
    Case("9_Steering.py", one_store, "Where", "where", "radio", timeout=120, zoo=True),
    Case("9_Steering.py", one_store, "Coefficient", "coeff", "slider", 120, (2.5, -4.0), True),
    Case("12_Explore.py", one_store, "Site", "site"),
    Case("12_Explore.py", three_stores, "Store", "store"),
    Case("12_Explore.py", one_store, "Points", "n", "select_slider"),
    Case("12_Explore.py", one_store, "Seed", "seed", "number_input", values=(1, 2)),
    Case("13_Jobs.py", finished_jobs, "Job", "job", parse=lambda o: o.split(":")[0]),
]
SLOW = {"10_Codebooks.py"}  # trains a small codebook model (seconds; as test_browser_codebook)


def case_id(case: Case) -> str:
    return f"{Path(case.page).stem}-{case.key}"


def page_path(page: str) -> str:
    return str(HOME if page == HOME.name else PAGES / page)


def picker(at: AppTest, case: Case):
    found = [w for w in getattr(at, case.widget) if w.label == case.label]
    assert len(found) == 1, f"{case.page}: no single {case.widget} {case.label!r}"
    return found[0]


def moves(widget, case: Case) -> list:
    """Two successive new values: two other options (A -> B -> C), or with only two options the
    other and back (A -> B -> A); a number input's from its case."""
    first = widget.value
    if case.values:
        assert first not in case.values
        return list(case.values)
    parse = case.parse or type(first)
    options = [parse(o) for o in widget.options]  # the options as shown: text
    assert len(options) >= 2
    others = [o for o in options if o != first]
    return others[:2] if len(others) >= 2 else [others[0], first]


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=[pytest.mark.slow] if c.page in SLOW else []) for c in CASES],
    ids=case_id,
)
def test_two_moves_in_a_row_both_stick(case, built, monkeypatch, request):
    monkeypatch.setenv(RUNS_ENV, str(built(case.make)))
    if case.zoo:
        monkeypatch.setenv(ZOO_ENV, str(request.getfixturevalue("quick_zoo")))
    at = AppTest.from_file(page_path(case.page), default_timeout=case.timeout).run()
    assert not at.exception, [e.value for e in at.exception]
    widget = picker(at, case)
    assert at.query_params[case.key] == str(widget.value)  # the first view is in the URL
    for value in moves(widget, case):
        widget.set_value(value)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        widget = picker(at, case)
        assert widget.value == value, f"{case.page}: moved {case.label!r} to {value!r}"
        assert at.query_params[case.key] == str(value)


def test_every_page_with_url_pickers_is_covered():
    """Pages drawing URL-backed widgets through `workbench_app.lib.state` all have a case here."""
    imports_state = re.compile(
        r"workbench_app\.lib\.state\b|from workbench_app\.lib import .*\bstate\b"
    )
    using = {p.name for p in [HOME, *PAGES.glob("*.py")] if imports_state.search(p.read_text())}
    assert using <= {c.page for c in CASES}
    assert {c.page for c in CASES} <= using
