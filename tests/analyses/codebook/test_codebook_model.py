"""Codebooks on any model through the intervention API; save/load round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from analyses.codebook.model import Codebooks, load_codebook_model
from workbench.errors import InputError, UnknownSiteError
from workbench.models import load_model


def _handle():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3))
    return load_model(net, device="cpu", dtype="float32")


def test_insert_records_ids_and_leaves_model_unchanged() -> None:
    handle = _handle()
    x = torch.randn(7, 5)
    before = handle.run(handle.prepare(x)).clone()
    books = Codebooks.for_handle(handle, ["1", "3"], n_codes=20, k=2, example_input=x)
    assert [layer.d for layer in books.layers] == [12, 12]
    with books.insert(handle):
        inside = handle.run(handle.prepare(x))
        ids = books.last_ids()
    assert not torch.allclose(inside, before)
    assert ids["1"].shape == (7, 2) and int(ids["3"].max()) < 20
    # the model is exactly as before once the block exits
    assert torch.equal(handle.run(handle.prepare(x)), before)
    assert all(not m._forward_hooks for m in handle.model.modules())


def test_site_must_exist_and_widths_must_match() -> None:
    handle = _handle()
    x = torch.randn(2, 5)
    with pytest.raises(UnknownSiteError, match="unknown site"):
        Codebooks.for_handle(handle, ["9"], n_codes=4, k=1, example_input=x)
    books = Codebooks({"1": 7}, n_codes=4, k=1)  # wrong width for site "1" (12)
    with (
        pytest.raises(InputError, match="codebook dimension 7 does not match"),
        books.insert(handle),
    ):
        handle.run(handle.prepare(x))
    assert torch.equal(handle.run(handle.prepare(x)), handle.run(handle.prepare(x)))


def test_save_load_round_trip(tmp_path) -> None:
    handle = _handle()
    x = torch.randn(9, 5)
    books = Codebooks.for_handle(handle, ["1", "3"], n_codes=16, k=3, example_input=x)
    books.report = {"note": "round trip"}
    with torch.no_grad():
        handle.model[0].weight.mul_(2.0)  # a "finetuned" model parameter
    books.save(tmp_path / "cb", model=handle.model)
    assert not any(p.suffix in (".pt", ".pkl", ".bin") for p in (tmp_path / "cb").iterdir())
    with books.insert(handle):
        want = handle.run(handle.prepare(x))
    fresh = _handle()  # original weights
    fresh_handle, loaded = load_codebook_model(tmp_path / "cb", handle=fresh)
    assert loaded.sites == ["1", "3"] and loaded.k == 3 and loaded.report == {"note": "round trip"}
    for a, b in zip(books.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with loaded.insert(fresh_handle):
        got = fresh_handle.run(fresh_handle.prepare(x))
    assert torch.equal(got, want)


def test_load_rejects_a_folder_without_config(tmp_path) -> None:
    with pytest.raises(InputError, match="not a saved codebook model"):
        Codebooks.load(tmp_path)
