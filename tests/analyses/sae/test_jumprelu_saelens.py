"""SAELens interop of JumpReLU SAEs with sae-lens itself (`benchmarks/check_saelens_jumprelu.py`):
ours loads in SAELens and SAELens's loads in ours with identical outputs. sae-lens cannot share
our environment, so this runs only where `benchmarks/out/venv-saelens` exists (made by
`benchmarks/bench_sae.py`) and is skipped elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "benchmarks" / "check_saelens_jumprelu.py"
VENV_PYTHON = ROOT / "benchmarks" / "out" / "venv-saelens" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not VENV_PYTHON.is_file(), reason="no benchmarks/out/venv-saelens")
def test_saelens_loads_ours_and_we_load_saelens():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ours_to_saelens"]["saelens_class"] == "JumpReLUSAE"
    assert result["saelens_to_ours"]["our_architecture"] == "jumprelu"
    for side in result.values():
        for key, value in side.items():
            if key.startswith("max_abs"):
                assert value <= 1e-5, (key, value)
