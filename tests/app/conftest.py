"""Fixtures for the web app's tests: a tmp runs directory (the app's WORKBENCH_RUNS_DIR) and a
small real store in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_stores import ToyStore, make_store

from workbench_app.services.runsdir import RUNS_ENV


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """An empty runs directory, set as the app's WORKBENCH_RUNS_DIR."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv(RUNS_ENV, str(runs))
    return runs


@pytest.fixture
def toy_store(runs_dir) -> ToyStore:
    """One complete store at runs/stores/toy."""
    return make_store(runs_dir, "stores/toy")
