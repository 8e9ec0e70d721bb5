"""The Steering page (AppTest) over a quick-built toy-lm: a saved sweep's best site is judged by
the same rule as the CLI's report (`analyses.steering.report.best_site`), so a sweep saved
with a best site that moved nothing shows that no site moved the concept."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from analyses.steering.report import best_site
from workbench import zoo
from workbench.analysis.results import Result

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "9_Steering.py")
SITES = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]


def _sweep(effects: dict[str, tuple[float, float]], best: str | None) -> Result:
    """A saved sweep whose metric moves by `effects[site]` = (concept, control) from 0 to the
    largest coefficient, and whose stored headline names `best` (as the old rule did)."""
    rows = []
    for site, (concept, control) in effects.items():
        for direction, delta, index in (("concept", concept, -1), ("random", control, 0)):
            for coeff in (0.0, 4.0):
                value = 0.1 + (delta if coeff else 0.0)
                rows.append((site, direction, index, coeff, "target_minus_opposite", value))
    frame = pd.DataFrame(rows, columns=["site", "direction", "control", "coeff", "metric", "value"])
    headline = {
        "metric": "target_minus_opposite",
        "effect_at_max_coeff": {s: {"concept": c, "control": r} for s, (c, r) in effects.items()},
        "best_site": best,
    }
    return Result("steering-sweep", frame, headline, {"metric": "target_minus_opposite"})


@pytest.fixture(scope="module")
def zoo_dir(quick_zoo):
    return quick_zoo


def test_saved_sweeps_are_judged_by_the_shared_rule(monkeypatch, zoo_dir, runs_dir):
    stale = {SITES[0]: (7.7e-6, 1e-5), SITES[1]: (1e-6, 2e-6)}
    moved = {SITES[0]: (0.02, 0.0), SITES[1]: (0.3, 0.01)}
    _sweep(stale, SITES[0]).save(runs_dir / "results" / "a-stale")
    _sweep(moved, SITES[1]).save(runs_dir / "results" / "b-moved")
    monkeypatch.setenv(zoo.ZOO_ENV, str(zoo_dir))
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.query_params["prompts"] = "the dog"
    at.run()
    assert not at.exception
    picker = next(s for s in at.selectbox if s.label == "Saved sweep")
    assert picker.value.startswith("results/a-stale")
    expected = best_site({s: {"concept": c, "control": r} for s, (c, r) in stale.items()})
    assert expected.site is None
    assert [w.value for w in at.warning] == [expected.sentence]
    assert not at.success
    picker.set_value(next(o for o in picker.options if o.startswith("results/b-moved"))).run()
    assert not at.exception
    assert [s.value for s in at.success] == [
        f"Best site {SITES[1]}: concept effect +0.3, 30.0x its random-direction control "
        "(+0.01), above the floor 0.02."
    ]
    assert not at.warning
