"""Zoo recipes `toy-lm` and `fsm-lm`: quick builds (checkpoints, curve, loading back through the
bridge), the cache discipline, and the full builds against their thresholds (slow)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

import workbench
import workbench.zoo.lm as lm
from workbench import zoo

NAMES = ["toy-lm", "fsm-lm"]


@pytest.fixture(scope="module")
def built(quick_zoo, built_once):
    """The quick builds (read only): toy-lm the session's quick zoo's, fsm-lm built once a run."""
    fsm = built_once("quick-fsm-lm", lambda root: zoo.build("fsm-lm", root=root, quick=True))
    return {"toy-lm": quick_zoo / "toy-lm", "fsm-lm": fsm / "fsm-lm"}


def _test_texts(name: str) -> list[str]:
    from workbench.data import fsm, grammar

    cfg = lm._quick(lm.TOY_CONFIG if name == "toy-lm" else lm.FSM_CONFIG)
    module = grammar if name == "toy-lm" else fsm
    return [e.text for e in module.generate(cfg.n_test, cfg.test_seed)]


def test_checkpoint_schedule():
    steps = lm.checkpoint_steps(1000, 250)
    assert steps == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 750, 1000]
    assert lm.checkpoint_steps(30, 1000) == [0, 1, 2, 4, 8, 16, 30]


@pytest.mark.parametrize("name", NAMES)
def test_quick_build(built, name):
    folder = built[name]
    meta = zoo.read_entry(folder)
    assert meta is not None and meta["complete"] and meta["quick"] is True
    assert meta["kind"] == "causal-lm" and meta["name"] == name
    recipe = zoo.get_recipe(name)
    assert recipe.metric in meta["metrics"]
    steps = sorted(int(c.removeprefix("step")) for c in meta["checkpoints"])
    assert steps[:5] == [0, 1, 2, 4, 8] and steps[-1] == meta["metrics"]["steps"]
    for ckpt in meta["checkpoints"]:
        assert (folder / ckpt / "model.safetensors").exists()
        assert (folder / ckpt / "tokenizer.json").exists()
    curve = json.loads((folder / "metrics.json").read_text())["curve"]
    assert [row["step"] for row in curve] == steps
    assert all(
        math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"]) for row in curve
    )
    assert curve[-1]["test_loss"] < curve[0]["test_loss"]
    assert curve[-1]["train_loss"] < curve[0]["train_loss"]
    assert curve[-1]["test_loss"] == pytest.approx(meta["metrics"]["test_loss"], abs=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_loads_back_and_matches_training_layout(built, name):
    from transformers import AutoModelForCausalLM

    folder = built[name]
    meta = zoo.read_entry(folder)
    last = folder / f"step{meta['metrics']['steps']}"
    handle = workbench.load_model(f"{folder}@last", device="cpu")
    texts = _test_texts(name)
    acts = workbench.capture(handle, zoo.get_recipe(name).sites, texts[:4])
    n_layers = (lm.TOY_CONFIG if name == "toy-lm" else lm.FSM_CONFIG).n_layers
    assert len(acts.sites) == n_layers
    for site in acts.sites:
        assert torch.isfinite(acts[site]).all()

    # The bridge tokenizes like training: [bos] + word ids.
    hf = AutoModelForCausalLM.from_pretrained(last).eval()
    tokenizer = handle.tokenizer
    ids, mask = lm.encode(tokenizer, texts[:3])
    for i, text in enumerate(texts[:3]):
        batch = handle.prepare(text)
        n = int(mask[i].sum())
        assert batch.input_ids[0].tolist() == ids[i, :n].tolist()
        logits = handle.run(batch)
        with torch.no_grad():
            ref = hf(input_ids=ids[i : i + 1, :n]).logits
        torch.testing.assert_close(logits.float(), ref, atol=1e-4, rtol=1e-4)

    # The HF model of the last checkpoint reproduces the recorded test loss.
    ids, mask = lm.encode(tokenizer, texts)
    assert lm.evaluate(hf, ids, mask)["loss"] == pytest.approx(
        meta["metrics"]["test_loss"], abs=1e-4
    )


def test_missing_checkpoint_rebuilds(built, tmp_path):
    folder = tmp_path / "fsm-lm"
    shutil.copytree(built["fsm-lm"], folder)  # a complete quick build, cached
    assert zoo.build("fsm-lm", root=tmp_path, quick=True) == folder
    assert zoo.read_entry(folder) is not None

    shutil.rmtree(folder / "step2")
    assert zoo.read_entry(folder) is None
    again = zoo.build("fsm-lm", root=tmp_path, quick=True)
    assert again == folder and (folder / "step2" / "model.safetensors").exists()
    assert zoo.read_entry(folder) is not None


def test_exception_during_train_leaves_nothing(tmp_path, monkeypatch):
    from workbench.zoo import hf_folder as build_module

    real_save = build_module.save_hf_folder

    def save_then_fail(model, tokenizer, folder):
        if folder.name == "step2":
            raise OSError(28, "No space left on device")
        return real_save(model, tokenizer, folder)

    monkeypatch.setattr(build_module, "save_hf_folder", save_then_fail)
    with pytest.raises(OSError):
        zoo.build("fsm-lm", root=tmp_path, quick=True)
    assert not (tmp_path / "fsm-lm").exists()
    assert not (tmp_path / "fsm-lm.partial").exists()
    assert zoo.read_entry(tmp_path / "fsm-lm") is None


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_build_passes_threshold(name, tmp_path):
    folder = zoo.build(name, root=tmp_path)
    meta = zoo.read_entry(folder)
    recipe = zoo.get_recipe(name)
    assert recipe.passed(meta["metrics"]), (recipe.metric, meta["metrics"], recipe.threshold)
    assert meta["passed"] is True
