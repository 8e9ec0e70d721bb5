"""Running batches: a killed run resumes without recomputing finished cells and ends with the same
parquet as an uninterrupted run; a failed cell is recorded and the others finish; local, process
pool and Ray executors give identical results; stores can live behind an fsspec URL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from batch_specs import write_spec

from workbench.batch import batch_status, load_spec, make_plan, read_results, run_batch
from workbench.batch.report import write_report
from workbench.cli.main import main


def _run(spec_path: Path, out: Path, **kwargs) -> dict:
    lines: list[str] = []
    status = run_batch(
        make_plan(load_spec(spec_path, out=str(out)), estimate=False), log=lines.append, **kwargs
    )
    status["lines"] = lines
    return status


def _finished(out: Path) -> dict[str, int]:
    """result.json of every finished cell -> its modification time (ns)."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/result.json")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, zoo_root):
    """An uninterrupted local run of the small spec."""
    folder = tmp_path_factory.mktemp("reference")
    spec = write_spec(folder / "spec.yaml", zoo_root)
    status = _run(spec, folder / "out")
    assert status["done"] == status["cells"] == 16 and status["failed"] == 0
    return spec, folder / "out"


def test_results_are_tidy(reference):
    _spec, out = reference
    frame = read_results(str(out))
    assert {"cell", "model", "step", "dataset", "site", "analysis", "metric", "value"} <= set(
        frame.columns
    )
    assert set(frame["step"]) == {0, 2, 8, 30}
    assert set(frame["analysis"]) == {"anisotropy", "probe"}
    anisotropy = frame[(frame["analysis"] == "anisotropy") & (frame["metric"] == "anisotropy")]
    assert len(anisotropy) == 8 and (anisotropy["param_n_pairs"] == 2000).all()
    # the probe's accuracy is a real number, and the trained model's last block beats chance
    probe = frame[(frame["analysis"] == "probe") & (frame["metric"] == "accuracy")]
    assert probe["value"].between(0, 1).all()


def test_rerun_skips_every_finished_cell(reference, tmp_path):
    spec, out = reference
    before = _finished(out)
    status = _run(spec, out)
    assert status["lines"][0] == "16 of 16 cells already done"
    assert not any(line.startswith(("[capture", "[cell")) for line in status["lines"])
    assert _finished(out) == before


@pytest.mark.slow
def test_killed_run_resumes_and_matches(reference, tmp_path):
    spec, reference_out = reference
    out = tmp_path / "out"
    command = [sys.executable, "-m", "workbench", "batch", "run", str(spec), "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # kill it hard once five cells are finished
        if line.startswith("[cell 5/"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = _finished(out)
    assert 5 <= len(done_before) < 16, "the run was not killed halfway"
    assert batch_status(str(out))["pending"] == 16 - len(done_before)

    status = _run(spec, out)
    assert status["lines"][0] == f"{len(done_before)} of 16 cells already done"
    assert not any(line.startswith("[capture") for line in status["lines"])  # stores were complete
    after = _finished(out)
    assert {k: after[k] for k in done_before} == done_before  # nothing recomputed
    assert len(after) == 16
    pd.testing.assert_frame_equal(read_results(str(out)), read_results(str(reference_out)))


def test_failed_cell_is_recorded_and_others_finish(tmp_path, zoo_root):
    analyses = [
        {"analysis": "anisotropy", "params": {"n_pairs": 500}},
        {"analysis": "probe", "label": "sentiment"},  # the text dataset has no sentiment label
    ]
    models = [{"model": "toy-lm", "steps": [0, "last"]}]
    spec = write_spec(tmp_path / "spec.yaml", zoo_root, analyses=analyses, models=models)
    status = _run(spec, tmp_path / "out")
    assert status["cells"] == 8 and status["done"] == 4 and status["failed"] == 4
    failure = status["failures"][0]
    assert failure["analysis"] == "probe" and "no label 'sentiment'" in failure["error"]
    error = json.loads((tmp_path / "out/cells" / failure["key"] / "error.json").read_text())
    assert "Traceback" in error["traceback"]
    # the CLI reports the same, and exits 1 because cells failed
    assert main(["batch", "status", str(tmp_path / "out")]) == 0
    assert main(["batch", "run", str(spec), "--out", str(tmp_path / "out")]) == 1
    html = Path(write_report(str(tmp_path / "out"))).read_text()
    assert "Failed cells" in html and "no label" in html and "anisotropy: anisotropy" in html


def test_trajectory_cells_fit_over_checkpoints(tmp_path, zoo_root):
    analyses = [
        {"analysis": "massive"},
        {
            "analysis": "massive-fit",
            "over_steps": {"analysis": "massive", "metric": "max_row_ratio"},
        },
    ]
    spec = write_spec(
        tmp_path / "spec.yaml",
        zoo_root,
        analyses=analyses,
        models=[{"model": "toy-lm"}],
        sites=["blocks.1.hook_resid_post"],
    )
    status = _run(spec, tmp_path / "out")
    assert status["failed"] == 0 and status["cells"] == 7 + 1
    frame = read_results(str(tmp_path / "out"))
    fit = frame[frame["analysis"] == "massive-fit"]
    ratios = frame[(frame["analysis"] == "massive") & (frame["metric"] == "max_row_ratio")]
    assert len(ratios) == 7 and not fit.empty
    assert fit["step"].isna().all() and (fit["site"] == "blocks.1.hook_resid_post").all()


def test_stores_behind_an_fsspec_url(tmp_path, zoo_root, monkeypatch):
    """Stores on a remote filesystem (fsspec's memory://, standing in for s3://) are captured to a
    local cache, uploaded manifest last, and downloaded by a worker whose cache lacks them."""
    import fsspec

    cache = tmp_path / "cache"
    monkeypatch.setenv("WORKBENCH_BATCH_CACHE", str(cache))
    models = [{"model": "toy-lm", "steps": "last"}]
    stores = "memory://batch-test/stores"
    spec = write_spec(tmp_path / "spec.yaml", zoo_root, stores=stores, models=models)
    status = _run(spec, tmp_path / "out")
    assert status["done"] == 4
    fs = fsspec.filesystem("memory")
    plan = make_plan(load_spec(spec, out=str(tmp_path / "out")), estimate=False)
    key = plan.captures[0].key
    assert fs.exists(f"/batch-test/stores/{key}/manifest.json")
    # a fresh worker (empty cache) running a new analysis downloads the store
    import shutil

    shutil.rmtree(cache)
    analyses = [{"analysis": "effective-rank"}]
    spec = write_spec(
        tmp_path / "spec.yaml", zoo_root, stores=stores, models=models, analyses=analyses
    )
    status = _run(spec, tmp_path / "out")
    assert status["done"] == 2 and not any(line.startswith("[capture") for line in status["lines"])
    assert (cache / key / "manifest.json").is_file()


@pytest.mark.slow
def test_executors_give_identical_results(reference, tmp_path, monkeypatch):
    """The process pool and a local Ray cluster started here give the reference's parquet. The
    pool works even when this process's `__main__` is a script that must not run again (as in
    a Streamlit page or after AppTest)."""
    import types

    pytest.importorskip("ray")
    spec, reference_out = reference
    expected = read_results(str(reference_out))
    script = tmp_path / "unguarded.py"
    script.write_text("raise SystemExit('the parent script ran again in a worker')\n")
    main_module = types.ModuleType("__main__")
    main_module.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main_module)
    pool = _run(spec, tmp_path / "pool", workers=2)
    assert pool["done"] == 16
    pd.testing.assert_frame_equal(read_results(str(tmp_path / "pool")), expected)
    env_before = os.environ.get("RAY_ADDRESS")
    ray = _run(spec, tmp_path / "ray", executor="ray", workers=2)
    assert ray["done"] == 16 and ray["executor"] == "ray"
    assert os.environ.get("RAY_ADDRESS") == env_before
    pd.testing.assert_frame_equal(read_results(str(tmp_path / "ray")), expected)


@pytest.mark.slow
def test_ray_cluster_started_by_the_test_is_joined_and_left_running(reference, tmp_path):
    """A Ray runtime that exists before the run (here a local cluster this test starts) is
    used as it is and not shut down by the batch."""
    ray = pytest.importorskip("ray")
    spec, reference_out = reference
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        status = _run(spec, tmp_path / "joined", executor="ray")
        assert status["done"] == 16
        assert ray.is_initialized()  # the batch did not stop a cluster it did not start
        assert ray.cluster_resources().get("CPU") == 2
    finally:
        ray.shutdown()
    expected = read_results(str(reference_out))
    pd.testing.assert_frame_equal(read_results(str(tmp_path / "joined")), expected)


def test_a_single_model_and_the_same_series_checkpoint_give_the_same_numbers(tmp_path, zoo_root):
    """A series checkpoint is loaded through the core checkpoint loop, a single model (here the
    same checkpoint's folder) with `load_model`: same weights, same data, same numbers."""
    from workbench.zoo import load_series

    series = load_series("toy-lm", zoo_root)
    folder = str(series.location(series.steps[-1]))
    spec = write_spec(
        tmp_path / "spec.yaml",
        zoo_root,
        models=[{"model": "toy-lm", "steps": ["last"]}, {"model": folder}],
        sites=["blocks.1.hook_resid_post"],
        analyses=[{"analysis": "anisotropy", "params": {"n_pairs": 2000}}],
    )
    status = _run(spec, tmp_path / "out")
    assert status["done"] == status["cells"] == 2 and status["failed"] == 0
    frame = read_results(str(tmp_path / "out"))
    rows = frame[frame["metric"] == "anisotropy"].set_index("model")
    # a column mixing steps and None is stored as text (`run._tidy`)
    assert rows.loc["toy-lm", "step"] == str(series.steps[-1]) and pd.isna(rows.loc[folder, "step"])
    assert rows.loc["toy-lm", "value"] == pytest.approx(rows.loc[folder, "value"], rel=1e-6)
