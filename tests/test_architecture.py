"""The architecture's numbers, checked: the import contracts hold (layers, no cycles, Streamlit
only in the app), the core's top level stays small, and pages stay layout."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_CORE_TOP_LEVEL = 15
MAX_PAGE_LINES = 250


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_core_top_level_is_small():
    modules = sorted(p.name for p in (ROOT / "workbench").glob("*.py"))
    assert len(modules) <= MAX_CORE_TOP_LEVEL, modules


def test_pages_are_layout():
    pages = [ROOT / "app" / "Home.py", *sorted((ROOT / "app" / "pages").glob("[0-9]*.py"))]
    lengths = {p.name: len(p.read_text().splitlines()) for p in pages}
    assert len(lengths) >= 15
    too_long = {name: n for name, n in lengths.items() if n > MAX_PAGE_LINES}
    assert not too_long, too_long
