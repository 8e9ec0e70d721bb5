"""The collapse-and-probes page over a runs dir holding a real NC series (quick-built digits-mlp)
and per-site probe results written by `workbench analyze probe --out`: AppTest (content, query
params, empty runs dir) and headless Chromium (no exception, charts drawn, a screenshot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from app_browser import needs_chromium, rendered_page
from streamlit.testing.v1 import AppTest

from analyses.neural_collapse.analyses import over_checkpoints
from workbench import zoo
from workbench.cli.main import main
from workbench.store import StoreWriter

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "5_Collapse_and_probes.py")
SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]


def probe_store(path: Path) -> None:
    """Tokens whose label is planted more strongly with depth (site i: strength i)."""
    rng = np.random.default_rng(0)
    n_examples, seq = 60, 6
    labels = rng.integers(0, 3, n_examples * seq)
    axes = rng.normal(size=(3, 16))
    acts = {
        site: (axes[labels] * i + rng.normal(size=(len(labels), 16))).astype(np.float32)
        for i, site in enumerate(SITES)
    }
    writer = StoreWriter(path, {"test": "collapse-page"})
    writer.append(
        acts,
        token_ids=rng.integers(0, 40, len(labels)),
        example_index=np.repeat(np.arange(n_examples), seq),
        position=np.tile(np.arange(seq), n_examples),
        row_labels={"kind": labels},
    )
    writer.finalize()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    root = tmp_path_factory.mktemp("zoo")
    zoo.build("digits-mlp", root, quick=True)
    series = over_checkpoints("digits-mlp", "train", zoo_root=root)
    series.save(runs / "results" / "neural-collapse" / "digits-mlp")
    probe_store(runs / "stores" / "planted")
    args = ["analyze", "probe", "--store", str(runs / "stores" / "planted"), "--label", "kind"]
    assert main([*args, "--out", str(runs / "results" / "probe" / "planted")]) == 0
    return runs


def test_page_shows_collapse_and_probes(runs, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert [h.value for h in at.header] == [
        "Neural collapse over training",
        "Linear probes per layer",
    ]
    assert at.query_params["nc"] in ("results/neural-collapse/digits-mlp",
                                     ["results/neural-collapse/digits-mlp"])  # fmt: skip
    assert at.selectbox[1].value == "results/probe/planted"  # per-site results grouped
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # NC1 per layer, NC2-NC4, probe accuracy per site
    table = at.dataframe[0].value
    assert list(table.site) == SITES
    assert table.accuracy.iloc[-1] > 0.9 > table.accuracy.iloc[0]  # planted by depth
    assert (table.majority_baseline < 0.5).all()


def test_empty_runs_dir_says_how_to_make_results(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path))
    (tmp_path / "notes.txt").write_text("not a result")  # not empty: the page's own message
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "over_checkpoints('digits-mlp')" in at.info[0].value


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_page_renders_in_chromium(runs, tmp_path):
    with rendered_page(runs, "Collapse_and_probes", 3, "page-collapse.png", tmp_path) as (
        _page,
        text,
    ):
        assert "Neural collapse over training" in text and "Linear probes per layer" in text
