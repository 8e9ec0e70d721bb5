"""`workbench codebook train|codes|steer` end to end, through the `workbench` command (the verb
comes from the `workbench.commands` entry point)."""

from __future__ import annotations

import json

import pytest

from workbench.cli.main import main as _main


@pytest.mark.slow
def test_train_codes_steer(tmp_path, capsys) -> None:
    out = str(tmp_path / "cb")
    assert _main(["codebook", "train", "--model", "fsm-lm", "--n-codes", "128", "--steps", "20",
                  "--n-train", "100", "--n-eval", "20", "--out", out, "--json"]) == 0  # fmt: skip
    trained = json.loads(capsys.readouterr().out)
    assert trained["sites"] == ["blocks.1.hook_resid_post"]
    assert 0 <= trained["with_codebooks"]["valid_accuracy"] <= 1

    assert (
        _main(["codebook", "codes", out, "--label", "state", "--n-examples", "50", "--json"]) == 0
    )
    codes = json.loads(capsys.readouterr().out)
    stats = codes["statistics"][0]
    assert stats["active_codes"] + stats["dead_codes"] == 128
    assert 0 < codes["purity"]["blocks.1.hook_resid_post"]["mean_precision"] <= 1

    assert _main(["codebook", "steer", out, "--prompt", "t1 t2", "--on", "3", "--json"]) == 0
    steered = json.loads(capsys.readouterr().out)
    assert len(steered["forced"]) == 1 and len(steered["codebooks"]) == 1

    assert _main(["codebook", "steer", out, "--prompt", "t1", "--on", "500"]) == 2
    assert "code index 500 does not exist" in capsys.readouterr().err
