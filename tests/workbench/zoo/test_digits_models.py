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
PENULTIMATE = {"digits-mlp": ("act2", 128), "digits-cnn": ("act3", 128)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return root, {name: zoo.build(name, root=root, quick=True) for name in NAMES}


def _inputs(name: str, n: int = 16) -> torch.Tensor:
    from workbench.data import digits

    x, _ = digits.as_arrays(digits.generate(n, 1), image=name == "digits-cnn")
    return torch.from_numpy(x)


def test_checkpoint_epochs():
    """Every epoch to 10, every 5 to 50, then every 10, plus the last."""
    assert zoo_digits.checkpoint_epochs(37) == [*range(11), 15, 20, 25, 30, 35, 37]
    epochs = zoo_digits.checkpoint_epochs(200)
    assert epochs[9:21] == [9, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70]
    assert epochs[-2:] == [190, 200] and len(epochs) == 34
    assert zoo_digits.checkpoint_epochs(3) == [0, 1, 2, 3]


def test_batch_norm_architectures_and_the_plain_ones():
    """The zoo's modules have batch norm (and the CNN its hidden layer `fc3`); `plain=True`
    gives the architecture without them, with the same initialisation from the same seed."""
    sizes = {(zoo_digits.mlp, False): 26_634, (zoo_digits.mlp, True): 26_122}
    sizes.update({(zoo_digits.cnn, False): 22_954, (zoo_digits.cnn, True): 6_090})
    for (factory, plain), size in sizes.items():
        assert sum(p.numel() for p in factory(plain).parameters()) == size
    names = dict(zoo_digits.cnn().named_modules())
    assert isinstance(names["bn3"], torch.nn.BatchNorm1d) and "fc3" not in dict(
        zoo_digits.cnn(plain=True).named_modules()
    )
    torch.manual_seed(0)
    fc1 = zoo_digits.mlp().fc1.weight
    torch.manual_seed(0)
    assert torch.equal(zoo_digits.mlp(plain=True).fc1.weight, fc1)


@pytest.mark.parametrize("name", NAMES)
def test_quick_build_writes_a_complete_series(built, name):
    _, folders = built
    folder = folders[name]
    meta = json.loads((folder / "zoo.json").read_text())
    zero = meta["metrics"]["zero_error_epoch"]  # always a checkpoint (-1: never reached)
    epochs = sorted({*zoo_digits.checkpoint_epochs(zoo_digits.QUICK_EPOCHS), zero} - {-1})
    assert meta["complete"] and meta["quick"] and meta["kind"] == "classifier"
    assert meta["recipe_version"] == zoo.get_recipe(name).version == 2
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
    assert set(zoo_digits.checkpoint_epochs(zoo_digits.QUICK_EPOCHS)) <= set(series.steps)
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
    # zero training error early, then a long terminal phase (epoch 7 of 200 for both)
    assert 0 < metrics["zero_error_epoch"] <= 20 and metrics["epochs"] == 200
    assert metrics["terminal_epochs"] == 200 - metrics["zero_error_epoch"]
    assert f"step_{metrics['zero_error_epoch']}.safetensors" in meta["checkpoints"]
