"""The zoo's cache discipline, on a stand-in recipe that trains nothing heavy."""

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from workbench import zoo
from workbench.errors import InputError


def _train(folder, quick):
    for step in (0, 1):
        torch.manual_seed(step)
        save_file(nn.Linear(2, 2).state_dict(), str(folder / f"step_{step}.safetensors"))
    (folder / "metrics.json").write_text(json.dumps([{"step": 1, "train_loss": 0.1}]))
    return {"train_loss": 0.1}


def _explode(folder, quick):
    (folder / "step_0.safetensors").write_bytes(b"half")
    raise OSError(28, "No space left on device")


@pytest.fixture
def recipes(monkeypatch):
    stand_in = zoo.Recipe(
        name="stand-in",
        dataset="digits",
        kind="classifier",
        train=_train,
        metric="train_loss",
        threshold=("<=", 0.5),
        sites="weight",
        module_factory=lambda: nn.Linear(2, 2),
    )
    broken = zoo.Recipe(
        name="broken",
        dataset="digits",
        kind="classifier",
        train=_explode,
        metric="train_loss",
        threshold=("<=", 0.5),
        sites="weight",
    )
    monkeypatch.setitem(zoo._RECIPES, "stand-in", stand_in)
    monkeypatch.setitem(zoo._RECIPES, "broken", broken)


def test_build_is_cached_and_listed(recipes, tmp_path, monkeypatch):
    folder = zoo.build("stand-in", tmp_path)
    meta = zoo.read_entry(folder)
    assert meta["passed"] is True and meta["checkpoints"] == [
        "step_0.safetensors",
        "step_1.safetensors",
    ]
    import dataclasses

    no_training = dataclasses.replace(zoo._RECIPES["stand-in"], train=_explode)
    monkeypatch.setitem(zoo._RECIPES, "stand-in", no_training)
    assert zoo.build("stand-in", tmp_path) == folder  # cached: the recipe does not run again
    row = next(r for r in zoo.list_zoo(tmp_path) if r["name"] == "stand-in")
    assert row["built"] and row["value"] == 0.1 and row["passed"]
    assert [h.info.checkpoint_step for h in zoo.load_series("stand-in", tmp_path)] == [0, 1]


def test_corrupt_cache_is_rebuilt(recipes, tmp_path, caplog):
    folder = zoo.build("stand-in", tmp_path)
    (folder / "step_1.safetensors").unlink()
    assert zoo.read_entry(folder) is None
    zoo.build("stand-in", tmp_path)
    assert zoo.read_entry(folder) is not None and "rebuilding" in caplog.text
    (folder / "zoo.json").write_text("{not json")
    zoo.build("stand-in", tmp_path)
    assert zoo.read_entry(folder) is not None


def test_a_build_of_another_recipe_version_is_rebuilt(recipes, tmp_path, monkeypatch, caplog):
    """A recipe whose training changed (its `version` raised) does not reuse the old build; a
    `zoo.json` without `recipe_version` (written before it existed) counts as version 1."""
    import dataclasses

    folder = zoo.build("stand-in", tmp_path)
    meta = json.loads((folder / "zoo.json").read_text())
    assert meta.pop("recipe_version") == 1
    (folder / "zoo.json").write_text(json.dumps(meta))  # as written before versions
    assert zoo.build("stand-in", tmp_path) == folder and "rebuilding" not in caplog.text
    calls = []
    newer = dataclasses.replace(
        zoo._RECIPES["stand-in"], version=2, train=lambda f, q: calls.append(f) or _train(f, q)
    )
    monkeypatch.setitem(zoo._RECIPES, "stand-in", newer)
    row = next(r for r in zoo.list_zoo(tmp_path) if r["name"] == "stand-in")
    assert not row["built"]  # stale: listed as not built
    zoo.build("stand-in", tmp_path)
    assert len(calls) == 1 and "recipe version 1, now 2" in caplog.text
    assert zoo.read_entry(folder)["recipe_version"] == 2
    zoo.build("stand-in", tmp_path)
    assert len(calls) == 1  # the new build is cached


def test_failed_build_leaves_nothing(recipes, tmp_path):
    with pytest.raises(OSError, match="No space"):
        zoo.build("broken", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_names(tmp_path):
    with pytest.raises(InputError, match="unknown zoo model 'nope'; valid: .*minilm"):
        zoo.build("nope", tmp_path)
    with pytest.raises(InputError, match="nothing to build"):
        zoo.build("minilm", tmp_path)
