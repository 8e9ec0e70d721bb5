"""`workbench massive track` end to end on the quick toy-lm (the verb comes from the
`workbench.commands` entry point), against `track_series` called directly; and the
`python -m analyses.massive.track` alias reaching the same code."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from analyses.massive.track import JOB_FILES, track_series
from workbench import zoo
from workbench.cli.main import main
from workbench.data import load_dataset

pytestmark = pytest.mark.slow


def test_track_writes_the_job_files(quick_zoo, tmp_path, capsys):
    out = tmp_path / "massive"
    args = ["massive", "track", "toy-lm", "--zoo-root", str(quick_zoo), "--out", str(out)]
    args += ["--n-examples", "4", "--steps", "last,first", "--n-draws", "2", "--json"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["out"] == str(out) and printed["dataset"] == "grammar-lm"
    assert [x["layer"] for x in printed["layers"]] == list(range(len(printed["layers"])))
    assert {a["mode"] for a in printed["ablation"]} == {"zero", "mean"}
    assert all((out / name).is_file() for name in JOB_FILES)

    series = zoo.load_series("toy-lm", quick_zoo)
    texts = [e.text for e in load_dataset("grammar-lm", 4)]
    direct = track_series(series, texts, steps=[series.steps[0], series.steps[-1]])
    written = pd.read_parquet(out / "trajectory.parquet")
    pd.testing.assert_frame_equal(written, direct)
    assert list(written["step"].unique()) == [series.steps[0], series.steps[-1]]
    ablation = pd.read_parquet(out / "ablation.parquet")
    assert len(ablation) == 2 * (1 + 2)  # (zero, mean) x (massive + 2 random draws)
    assert set(ablation["site"]) == {"blocks.1.hook_resid_post"}


def test_refusals_name_the_valid_choices(quick_zoo, tmp_path, capsys):
    base = ["massive", "track", "--zoo-root", str(quick_zoo), "--out", str(tmp_path / "o")]
    assert main([*base, "toy-lm", "--steps", "0,7"]) == 2
    steps = ", ".join(map(str, zoo.load_series("toy-lm", quick_zoo).steps))
    assert f"no step 7; valid: first, last, {steps}" in capsys.readouterr().err
    assert main([*base, str(tmp_path / "missing")]) == 2
    assert "not a checkpoint series" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_python_m_alias_runs_the_verb(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "analyses.massive.track", str(tmp_path / "missing")]
        + ["--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "workbench massive: error: not a checkpoint series" in done.stderr
