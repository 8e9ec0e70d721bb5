"""Zoo recipes `digits-mlp` and `digits-cnn`: quick builds (checkpoints, curve, loading back as a
series with the module factory, capture at the penultimate site), and the full builds (slow)."""

import json

import numpy as np
import pytest
import torch

import workbench
from workbench import CheckpointSeries, zoo
from workbench.zoo import digits as zoo_digits

NAMES = ["digits-mlp", "digits-cnn"]
PENULTIMATE = {"digits-mlp": ("act2", 128), "digits-cnn": ("flatten", 128)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return root, {name: zoo.build(name, root=root, quick=True) for name in NAMES}


def _inputs(name: str, n: int = 16) -> torch.Tensor:
    from workbench.data import digits

    x, _ = digits.as_arrays(digits.generate(n, 1), image=name == "digits-cnn")
    return torch.from_numpy(x)


def test_checkpoint_epochs():
    assert zoo_digits.checkpoint_epochs(35) == [*range(11), 20, 30, 35]
    assert zoo_digits.checkpoint_epochs(300)[-3:] == [280, 290, 300]


@pytest.mark.parametrize("name", NAMES)
def test_quick_build_writes_a_complete_series(built, name):
    _, folders = built
    folder = folders[name]
    meta = json.loads((folder / "zoo.json").read_text())
    epochs = zoo_digits.checkpoint_epochs(zoo_digits.QUICK_EPOCHS)
    assert meta["complete"] and meta["quick"] and meta["kind"] == "classifier"
    assert meta["checkpoints"] == sorted(f"step_{e}.safetensors" for e in epochs)
    curve = json.loads((folder / "metrics.json").read_text())
    assert [row["epoch"] for row in curve] == epochs
    assert {"epoch", "train_loss", "train_acc", "test_acc"} <= set(curve[0])
    assert curve[-1]["train_loss"] < curve[0]["train_loss"]
    assert "zero_error_epoch" in meta["metrics"]


@pytest.mark.parametrize("name", NAMES)
def test_series_loads_and_captures(built, name):
    root, folders = built
    recipe = zoo.get_recipe(name)
    series = zoo.load_series(name, root)  # cached: no rebuild
    assert series.steps == zoo_digits.checkpoint_epochs(zoo_digits.QUICK_EPOCHS)
    direct = CheckpointSeries(folders[name], build=recipe.module_factory)
    handle = direct.load(direct.steps[-1], device="cpu")
    site, width = PENULTIMATE[name]
    assert site in handle.sites() and recipe.sites == site
    acts = workbench.capture(handle, site, _inputs(name))
    values = acts.numpy(site)
    assert values.shape == (16, width) and np.isfinite(values).all()
    first = series.load(series.steps[0], device="cpu")
    assert first.info.checkpoint_step == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_build_passes(tmp_path, name):
    folder = zoo.build(name, root=tmp_path)
    meta = json.loads((folder / "zoo.json").read_text())
    metrics = meta["metrics"]
    assert zoo.get_recipe(name).passed(metrics) and meta["passed"]
    assert metrics["train_accuracy"] == 1.0
    assert 0 < metrics["zero_error_epoch"] < metrics["epochs"]
