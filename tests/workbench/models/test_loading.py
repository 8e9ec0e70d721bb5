import os
import pickle
import shutil
import socket

import pytest
import torch

from tests.conftest import MLP
from workbench import capture, load_model
from workbench.errors import UnknownModelError, UnsafeCheckpointError
from workbench.models.weights import load_state_dict

NATIVE = {
    "n_layers": 2,
    "d_model": 32,
    "n_ctx": 32,
    "d_head": 8,
    "n_heads": 4,
    "d_vocab": 50,
    "act_fn": "gelu",
    "d_mlp": 64,
}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_minilm_short_name_is_real_and_offline(minilm):
    assert minilm.info.kind == "transformers" and minilm.is_language_model
    assert "blocks.5.hook_resid_post" in minilm.sites()
    assert minilm.weights_hash.startswith("sha256:")
    assert minilm.provenance()["weights_hash"] == minilm.weights_hash


def test_hf_folder_loads_through_the_bridge(neox, neox_dir):
    assert neox.info.location == str(neox_dir)
    assert neox.vocab_size == len(neox.tokenizer)
    assert {"hook_embed", "blocks.3.hook_resid_post", "blocks.0.attn.hook_pattern"} <= set(
        neox.sites()
    )


def test_missing_model_says_what_was_tried_without_network(no_network, tmp_path):
    with pytest.raises(UnknownModelError) as err:
        load_model("someone/not-a-model", device="cpu")
    message = str(err.value)
    assert "short names (minilm)" in message and "does not exist" in message
    assert "allow_download" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownModelError, match="has no config.json"):
        load_model(tmp_path / "empty", device="cpu")


def test_native_config_dict_and_json(tmp_path):
    handle = load_model(NATIVE, device="cpu")
    assert handle.info.kind == "native"
    acts = capture(handle, "blocks.*.hook_resid_post", torch.randint(0, 50, (2, 7)))
    assert acts["blocks.1.hook_resid_post"].shape == (14, 32)
    path = tmp_path / "native.json"
    path.write_text(__import__("json").dumps(NATIVE))
    assert load_model(path, device="cpu").info.kind == "native"
    with pytest.raises(UnknownModelError, match="native config"):
        load_model({"n_layers": "two"}, device="cpu")


def test_plain_module_handle(mlp):
    assert mlp.info.kind == "torch" and not mlp.is_language_model
    assert mlp.sites() == ["fc1", "fc2", "act", "head"]
    assert mlp.weights_hash == load_model(mlp.model, device="cpu").weights_hash


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_unsafe_pickle_is_refused_and_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"weight": _Exploit()}))
    with pytest.raises(UnsafeCheckpointError, match="weights_only=True"):
        load_state_dict(bad)
    assert not (tmp_path / "PWNED_MARKER").exists()
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(load_state_dict(good)["w"], torch.ones(2))


def test_hf_folder_with_pickle_weights_is_checked_first(neox_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "pickled"
    shutil.copytree(neox_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": _Exploit()}))
    with pytest.raises(UnsafeCheckpointError):
        load_model(folder, device="cpu")
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_trust_remote_code_is_off_unless_asked(neox_dir, monkeypatch):
    from transformer_lens.model_bridge import TransformerBridge

    seen = {}
    original = TransformerBridge.boot_transformers

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(TransformerBridge, "boot_transformers", spy)
    handle = load_model(neox_dir, device="cpu")
    assert seen["trust_remote_code"] is False and handle.info.trust_remote_code is False
    load_model(neox_dir, device="cpu", trust_remote_code=True)
    assert seen["trust_remote_code"] is True


def test_bad_device_and_dtype_are_named():
    from workbench.errors import InputError

    with pytest.raises(InputError, match="'float8'"):
        load_model(MLP(), device="cpu", dtype="float8")
    with pytest.raises(InputError, match="'tpu'"):
        load_model(MLP(), device="tpu")


def test_hub_name_loads_from_the_local_cache_without_network(
    no_network, neox_dir, tmp_path, monkeypatch
):
    """A hub name already in the Hugging Face cache loads offline (the cache's snapshot folder)."""
    import huggingface_hub.constants as hub_constants

    snapshot = tmp_path / "hub" / "models--someone--tiny-neox" / "snapshots" / "abc123"
    shutil.copytree(neox_dir, snapshot)
    refs = tmp_path / "hub" / "models--someone--tiny-neox" / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc123")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    handle = load_model("someone/tiny-neox", device="cpu")
    assert handle.info.source == "someone/tiny-neox"
    assert handle.info.location == str(snapshot)
    assert "blocks.0.hook_resid_post" in handle.sites()


def test_local_folder_loads_without_network(no_network, neox_dir):
    assert load_model(neox_dir, device="cpu").info.kind == "transformers"
