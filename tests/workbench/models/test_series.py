import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import MLP
from workbench import CheckpointSeries, capture, load_model
from workbench.errors import InputError, UnknownModelError
from workbench.models import series as series_module


@pytest.fixture
def hf_series(neox_dir, tmp_path):
    root = tmp_path / "series"
    for step in (0, 10, 2):  # unordered on purpose
        shutil.copytree(neox_dir, root / f"step{step}")
    return root


def test_steps_are_ordered_and_loaded_lazily(hf_series, monkeypatch):
    loads = []
    original = series_module.CheckpointSeries.load

    def counting(self, step, **kw):
        loads.append(step)
        return original(self, step, **kw)

    monkeypatch.setattr(series_module.CheckpointSeries, "load", counting)
    series = CheckpointSeries(hf_series)
    assert series.steps == [0, 2, 10] and loads == []
    iterator = iter(series)
    first = next(iterator)
    assert loads == [0] and first.info.checkpoint_step == 0
    assert [h.info.checkpoint_step for h in iterator] == [2, 10]


def test_dir_at_step_syntax(hf_series):
    handle = load_model(f"{hf_series}@last", device="cpu")
    assert handle.info.checkpoint_step == 10
    with pytest.raises(InputError, match="steps: \\[0, 2, 10\\]"):
        load_model(f"{hf_series}@5", device="cpu")
    with pytest.raises(UnknownModelError, match="checkpoint series"):
        load_model(hf_series, device="cpu")


def test_safetensors_state_dicts_of_a_plain_module(tmp_path):
    root = tmp_path / "mlp_series"
    root.mkdir()
    for step in (1, 4):
        torch.manual_seed(step)
        save_file(MLP().state_dict(), str(root / f"step_{step:06d}.safetensors"))
    series = CheckpointSeries(root, build=MLP)
    handles = list(series)
    assert [h.info.checkpoint_step for h in handles] == [1, 4]
    x = torch.randn(3, 8)
    a, b = (capture(h, "head", x)["head"] for h in handles)
    assert not torch.allclose(a, b)  # really different weights per step
    assert handles[0].weights_hash != handles[1].weights_hash
    with pytest.raises(InputError, match="build="):
        CheckpointSeries(root).load(1)


def test_native_series(tmp_path):
    config = {
        "n_layers": 1,
        "d_model": 16,
        "n_ctx": 16,
        "d_head": 4,
        "n_heads": 4,
        "d_vocab": 20,
        "act_fn": "relu",
        "d_mlp": 32,
    }
    root = tmp_path / "native_series"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(config))
    model = load_model(config, device="cpu").model
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "step_3.safetensors")
    )
    handle = CheckpointSeries(root).load(3, device="cpu")
    assert handle.info.kind == "native" and handle.info.checkpoint_step == 3
    loaded = handle.model.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_empty_or_duplicate_series_is_an_error(tmp_path):
    with pytest.raises(UnknownModelError, match="no checkpoints"):
        CheckpointSeries(tmp_path)
    (tmp_path / "step5").mkdir()
    (tmp_path / "step_5.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="two checkpoints for step 5"):
        CheckpointSeries(tmp_path)
