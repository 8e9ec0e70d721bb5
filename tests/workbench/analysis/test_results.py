import pandas as pd
import pytest

from workbench.analysis.results import Result
from workbench.errors import InputError


def make():
    frame = pd.DataFrame({"site": ["a", "b"], "metric": ["m", "m"], "value": [1.0, 2.0]})
    return Result("demo", frame, headline={"m": 1.5}, params={"k": 3}, provenance={"store": "x"})


def test_save_load_round_trip(tmp_path):
    result = make()
    loaded = Result.load(result.save(tmp_path / "r"))
    pd.testing.assert_frame_equal(loaded.frame, result.frame)
    assert (loaded.headline, loaded.params, loaded.provenance) == (
        result.headline,
        result.params,
        result.provenance,
    )
    frame = loaded.to_frame()
    assert list(frame["param_k"]) == [3, 3] and set(frame["analysis"]) == {"demo"}
    assert loaded.to_json() == {"analysis": "demo", "m": 1.5, "settings": {"k": 3}}
    assert len(loaded.figures()) == 1 and len(loaded.figures()[0].data) == 1


def test_unfinished_result_does_not_read_as_complete(tmp_path):
    make().save(tmp_path / "r")
    (tmp_path / "r" / "result.json").unlink()
    with pytest.raises(InputError, match="no finished result"):
        Result.load(tmp_path / "r")
    with pytest.raises(InputError, match="lacks columns"):
        Result("x", pd.DataFrame({"value": [1]}))


def test_list_results_skips_what_is_not_a_result(tmp_path):
    """A batch cell's result.json (other keys) beside a Result: only the Result is listed, and
    loading the cell as a Result says what it is instead of raising KeyError."""
    from workbench.analysis.results import list_results

    make().save(tmp_path / "results" / "demo")
    cell = tmp_path / "sweeps" / "s" / "cells" / "0123abcd"
    cell.mkdir(parents=True)
    make().frame.to_parquet(cell / "result.parquet")
    (cell / "result.json").write_text('{"analysis": "demo", "cell": {}, "headline": {}}')
    (tmp_path / "results" / "broken").mkdir()
    (tmp_path / "results" / "broken" / "result.json").write_text("[1, 2]")
    make().frame.to_parquet(tmp_path / "results" / "broken" / "result.parquet")
    assert [r["path"] for r in list_results(tmp_path)] == ["results/demo"]
    with pytest.raises(InputError, match="holds a batch cell, not a Result"):
        Result.load(cell)
