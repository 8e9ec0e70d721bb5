"""Save/load: our format and SAELens's, round trips, foreign checkpoints with missing keys."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from analyses.sae import create_sae, load_sae, load_saelens, save_sae, save_saelens
from workbench.errors import InputError


def _randomise(sae):
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p))
    return sae.eval()


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk"])
@pytest.mark.parametrize("fmt", ["ours", "saelens"])
def test_round_trip(tmp_path, arch, fmt):
    sae = _randomise(create_sae(arch, d_in=8, d_sae=16, **({} if arch == "relu" else {"k": 3})))
    if arch == "batchtopk":
        sae.threshold.fill_(0.25)
    meta = {"site": "blocks.1.hook_resid_post", "model": "toy"}
    (save_sae if fmt == "ours" else save_saelens)(sae, tmp_path, meta)
    loaded, got_meta = load_sae(tmp_path)  # detects the format
    assert got_meta["site"] == "blocks.1.hook_resid_post"
    x = torch.randn(10, 8)
    torch.testing.assert_close(loaded(x), sae(x), rtol=0, atol=0)
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.equal(getattr(loaded, name), getattr(sae, name))


def test_saelens_files_and_keys(tmp_path):
    sae = _randomise(create_sae("topk", d_in=8, d_sae=16, k=3))
    save_saelens(sae, tmp_path, {"site": "blocks.0.hook_resid_post", "model": "toy-lm"})
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 3
    assert (cfg["d_in"], cfg["d_sae"]) == (8, 16)
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_post"
    tensors = load_file(str(tmp_path / "sae_weights.safetensors"))
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {
        "W_enc": (8, 16),
        "W_dec": (16, 8),
        "b_enc": (16,),
        "b_dec": (8,),
    }


def test_foreign_checkpoint_missing_keys_named(tmp_path):
    save_file(
        {"W_enc": torch.zeros(8, 16), "b_dec": torch.zeros(8)},
        str(tmp_path / "sae_weights.safetensors"),
    )
    (tmp_path / "cfg.json").write_text(
        json.dumps({"architecture": "standard", "d_in": 8, "d_sae": 16})
    )
    with pytest.raises(InputError, match="lacks tensors b_enc, W_dec"):
        load_saelens(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "topk", "d_in": 8}))
    with pytest.raises(InputError, match="lacks keys d_sae"):
        load_sae(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "topk", "d_in": 8, "d_sae": 16}))
    with pytest.raises(InputError, match="lacks key k"):
        load_sae(tmp_path)
    (tmp_path / "cfg.json").write_text(
        json.dumps({"architecture": "gated", "d_in": 8, "d_sae": 16})
    )
    with pytest.raises(InputError, match="'gated' is not supported"):
        load_sae(tmp_path)


def test_wrong_shapes_and_not_an_sae(tmp_path):
    sae = create_sae("relu", d_in=8, d_sae=16)
    save_saelens(sae, tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    cfg["d_sae"] = 32
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"W_enc has shape \(8, 16\), expected \(8, 32\)"):
        load_sae(tmp_path)
    with pytest.raises(InputError, match="holds no SAE"):
        load_sae(tmp_path / "nothing")
