"""The quick toy-lm checkpoint series of the session's zoo."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def zoo_root(quick_zoo) -> Path:
    return quick_zoo
