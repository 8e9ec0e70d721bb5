"""`workbench analyze sae-eval`: the registry face of the SAE metrics, on arrays and stores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analyses.sae import create_sae, evaluate, save_sae
from workbench.cli.main import main
from workbench.store import StoreWriter


@pytest.fixture
def sae_dir(tmp_path):
    torch.manual_seed(0)
    sae = create_sae("topk", d_in=8, d_sae=16, k=3)
    return save_sae(sae, tmp_path / "sae", meta={"site": "x"}), sae


def test_arrays_and_store_agree_with_evaluate(sae_dir, tmp_path, capsys):
    directory, sae = sae_dir
    acts = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", acts)
    assert main(["analyze", "sae-eval", "--acts", str(tmp_path / "a.npy"),
                 "--set", f"sae={directory}", "--json"]) == 0  # fmt: skip
    payload = json.loads(capsys.readouterr().out)
    expected = evaluate(sae, acts)
    assert payload["explained_variance"] == pytest.approx(expected["explained_variance"])
    assert payload["l0"] == pytest.approx(3.0)  # TopK fires exactly k latents per row
    writer = StoreWriter(tmp_path / "s", {"model": "m", "sites": ["x"]})
    writer.append({"x": acts}, None, np.arange(64), None)
    writer.finalize()
    assert main(["analyze", "sae-eval", "--store", str(tmp_path / "s"), "--site", "x",
                 "--set", f"sae={directory}", "--json"]) == 0  # fmt: skip
    stored = json.loads(capsys.readouterr().out)
    assert stored["explained_variance"] == pytest.approx(payload["explained_variance"], rel=1e-6)


def test_needs_an_sae_of_the_right_width(sae_dir, tmp_path, capsys):
    directory, _ = sae_dir
    np.save(tmp_path / "a.npy", np.ones((4, 5), np.float32))
    assert main(["analyze", "sae-eval", "--acts", str(tmp_path / "a.npy")]) == 2
    assert "--set sae=DIR" in capsys.readouterr().err
    assert main(["analyze", "sae-eval", "--acts", str(tmp_path / "a.npy"),
                 "--set", f"sae={directory}"]) == 2  # fmt: skip
    assert "width 5 but the SAE has d_in = 8" in capsys.readouterr().err
