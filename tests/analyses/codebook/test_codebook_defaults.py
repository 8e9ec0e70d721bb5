"""`workbench codebook train` with its defaults keeps fsm-lm's states at every block (issue 22):
state purity >= 0.9 and next-token validity within 5 points of the model without the codebook,
with a reconstruction loss that does not grow; a diverging run stops naming the step and --lr
and saves nothing; a run stopped early says it is not converged."""

from __future__ import annotations

import json

import pytest
import torch

from workbench.cli.main import main as _main


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is faster on a shared CPU
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("block", [0, 1])
def test_defaults_keep_the_states(block, fsm_defaults, capsys) -> None:
    folder = fsm_defaults(block)
    site = f"blocks.{block}.hook_resid_post"
    trained = json.loads((folder / "train.json").read_text())
    before = trained["without_codebooks"]["valid_accuracy"]
    after = trained["with_codebooks"]["valid_accuracy"]
    assert before > 0.9 and after >= before - 0.05, (before, after)
    assert trained["converged"] is True and "warning" not in trained
    assert _main(["codebook", "codes", str(folder / "cb"), "--label", "state", "--json"]) == 0
    codes = json.loads(capsys.readouterr().out)
    assert codes["purity"][site]["mean_precision"] >= 0.9, codes["purity"]
    curve = json.loads((folder / "cb" / "codebook.json").read_text())["report"]["curve"]
    assert curve[-1]["recon"] <= 1.5 * curve[0]["recon"], curve  # the stream does not drift
    print(block, before, after, codes["purity"][site], trained["train_seconds"])


@pytest.mark.slow
def test_divergence_stops_and_saves_nothing(tmp_path, capsys, one_thread) -> None:
    out = tmp_path / "cb"
    args = ["codebook", "train", "--n-codes", "64", "--n-train", "40", "--n-eval", "10",
            "--steps", "40", "--lr", "1000", "--out", str(out)]  # fmt: skip
    assert _main(args) == 2
    err = capsys.readouterr().err
    assert "codebook training diverged at step" in err and "--lr, now 1000" in err, err
    assert not (out / "codebook.json").exists()


@pytest.mark.slow
def test_a_short_run_says_it_is_not_converged(tmp_path, capsys, one_thread) -> None:
    out = tmp_path / "cb"
    args = ["codebook", "train", "--n-codes", "64", "--n-train", "40", "--n-eval", "10",
            "--steps", "1", "--out", str(out), "--json"]  # fmt: skip
    assert _main(args) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["converged"] is False and "not converged" in result["warning"]
    assert "not converged" in captured.err
    report = json.loads((out / "codebook.json").read_text())["report"]
    assert report["convergence"]["converged"] is False
    # fsm walks have no topic: --topic names the datasets that have one
    assert _main(["codebook", "steer", str(out), "--topic", "animals"]) == 2
    assert "'fsm', whose examples have no topic label" in capsys.readouterr().err
