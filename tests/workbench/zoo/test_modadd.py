"""The `mod-add` zoo recipe: quick build round trip, and the full grokking build (slow)."""

import json

import numpy as np
import pytest
import torch

import workbench
from workbench import zoo
from workbench.zoo import modadd


@pytest.fixture(scope="module")
def quick_folder(tmp_path_factory):
    return zoo.build("mod-add", root=tmp_path_factory.mktemp("zoo"), quick=True)


def test_checkpoint_schedule_is_log_then_linear():
    steps = modadd.checkpoint_steps(1000, 100)
    assert steps[:5] == [0, 1, 2, 4, 8] and 512 in steps
    assert [s for s in steps if s > 512] == [600, 700, 800, 900, 1000]
    assert modadd.checkpoint_steps(60, modadd.LINEAR_EVERY) == [0, 1, 2, 4, 8, 16, 32, 60]


def test_quick_build_writes_a_complete_series(quick_folder):
    meta = json.loads((quick_folder / "zoo.json").read_text())
    assert meta["complete"] and meta["quick"] and meta["kind"] == "causal-lm"
    assert meta["metric"] == "test_accuracy"
    steps = modadd.checkpoint_steps(modadd.QUICK_STEPS, modadd.LINEAR_EVERY)
    assert meta["checkpoints"] == sorted(f"step{s}" for s in steps)
    for name in meta["checkpoints"]:
        assert (quick_folder / name / "config.json").is_file()
    curve = json.loads((quick_folder / "metrics.json").read_text())
    assert [row["step"] for row in curve] == steps
    assert set(curve[0]) == {"step", "train_loss", "train_acc", "test_loss", "test_acc"}
    assert curve[-1]["train_loss"] < curve[0]["train_loss"]
    for key in ("memorised_step", "generalised_step", "test_accuracy", "train_accuracy"):
        assert key in meta["metrics"]


def test_checkpoint_loads_with_sites_and_matches_training_forward(quick_folder):
    handle = workbench.load_model(f"{quick_folder}@last", device="cpu")
    assert handle.info.checkpoint_step == modadd.QUICK_STEPS
    batch = handle.prepare(["12 5 =", "3 40 ="])
    # the layout trained on: bos, a, b, =
    ids = handle.tokenizer.convert_tokens_to_ids(["<|endoftext|>", "12", "5", "="])
    assert batch.input_ids[0].tolist() == ids
    acts = workbench.capture(handle, "blocks.0.hook_resid_post", ["12 5 ="], positions="last")
    values = acts.numpy("blocks.0.hook_resid_post")
    assert values.shape[-1] == modadd.D_MODEL and np.isfinite(values).all()
    # the loaded (TransformerLens bridge) model computes what training optimised
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(quick_folder / f"step{modadd.QUICK_STEPS}")
    assert hf.config.use_parallel_residual is False
    with torch.no_grad():
        bridge = handle.run(batch)[:, -1]
        fast = modadd._answer_logits(hf, batch.input_ids)
    torch.testing.assert_close(bridge.float(), fast, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_full_build_groks(tmp_path):
    folder = zoo.build("mod-add", root=tmp_path)
    meta = json.loads((folder / "zoo.json").read_text())
    metrics = meta["metrics"]
    assert zoo.get_recipe("mod-add").passed(metrics) and meta["passed"]
    assert 0 <= metrics["memorised_step"] < metrics["generalised_step"]
    curve = json.loads((folder / "metrics.json").read_text())
    at_memorised = next(r for r in curve if r["step"] == metrics["memorised_step"])
    assert at_memorised["test_acc"] < 0.95
