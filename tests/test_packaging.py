"""`pip install .` (not editable) gives a working `workbench` and puts no top-level `app` or
`datasets` module into site-packages."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_layout_and_installed_cli(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"workbench", "analyses", "probes", "workbench_app", "workbench_datasets"}
    assert "workbench_app/Home.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "workbench = workbench.cli.main:main" in text and "activation-stats" in text

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    assert not (target / "app").exists() and not (target / "datasets").exists()
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = (
        "import workbench, workbench_app.launch as a; from workbench.cli.main import main; "
        "print(workbench.__file__); print(a.app_home()); main(['analyze'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(target)) and out[1] == str(target / "workbench_app" / "Home.py")
    assert any(line.startswith("activation-stats") for line in out[2:])
