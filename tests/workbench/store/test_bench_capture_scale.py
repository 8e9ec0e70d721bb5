"""`benchmarks/bench_capture_scale.py`: the on-paper Pythia estimate's arithmetic, and a smoke
run of the capture benchmark (`--quick`) so that the script cannot rot."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def bench_module():
    spec = importlib.util.spec_from_file_location(
        "bench_capture_scale", ROOT / "benchmarks/bench_capture_scale.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_capture_scale"] = module
    spec.loader.exec_module(module)
    return module


def test_pythia_checkpoints_and_estimate_arithmetic():
    bench = bench_module()
    steps = bench.PYTHIA_STEPS
    assert len(steps) == 154
    assert steps[:12] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    assert steps[-1] == 143000 and steps == sorted(set(steps))
    table = bench.estimate(
        tokens=1000, row_bytes=24, peak_tflops=1.0, utilisation=1.0, disk_gbps=1.0, fixed_s=0.0
    )
    row = next(line for line in table.splitlines() if line.startswith("| pythia-410m "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    params, layers, d = bench.PYTHIA["410m"]
    assert cells[1] == f"{layers} x {d}" and cells[2] == "154"
    # 2 x params x tokens FLOPs at 1 TFLOP/s, plus the store (layers x d x 2 B + 24 B per token)
    # written and the fp16 weights read at 1 GB/s, 154 times
    store = 1000 * (layers * d * 2 + 24)
    hours = 154 * (2 * params * 1000 / 1e12 + store / 1e9 + 2 * params / 1e9) / 3600
    assert float(cells[5]) == pytest.approx(hours, abs=0.05)
    assert float(cells[6].replace(",", "")) == pytest.approx(154 * store / 1e9, abs=0.5)
    assert float(cells[7].replace(",", "")) == pytest.approx(params * 2 * 154 / 1e9, abs=0.5)


@pytest.mark.slow
def test_quick_capture_benchmark_runs(tmp_path, capsys):
    """The whole benchmark at smoke size: a 4-layer d128 GPT-NeoX, 32,768 tokens into a bf16
    store in a child process; the table reports the store's bytes per token and the ratios."""
    bench = bench_module()
    assert bench.main(["--quick", "--tokens", "8192", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "8,192 rows" in out and "store dtype bfloat16" in out
    per_token = float(re.search(r"\*\*([\d,.]+) bytes/token\*\*", out).group(1).replace(",", ""))
    assert 280 <= per_token < 300  # 128 x 2 B bf16 + 3 x 8 B row fields, plus the manifest
    assert re.search(r"capture_to_store / plain forward to the same site\*\* \| \*\*[\d.]+", out)
    assert not [d for d in tmp_path.glob("capture_scale_*") if d.is_dir()]  # store removed
    assert (tmp_path / "capture_scale_last.json").is_file()  # the raw measurements
