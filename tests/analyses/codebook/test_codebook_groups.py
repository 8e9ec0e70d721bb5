"""Grouped codebooks (Tamkin et al. 2023, the reference's `GroupCodebookLayer`): G codebooks per
site, each over its own d / G slice; global code ids; saved and loaded like one group, and
folders written before groups still load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analyses.codebook.analysis import group_codes
from analyses.codebook.layer import CodebookLayer, force
from analyses.codebook.model import CONFIG_NAME, Codebooks
from workbench.errors import InputError


def test_each_group_snaps_its_own_slice() -> None:
    layer = CodebookLayer(d=8, n_codes=5, k=2, groups=4, seed=1)
    assert layer.n_codes == 20 and layer.codebook.shape == (20, 2)
    x = torch.randn(3, 6, 8)
    out = layer(x)
    ids = layer.last_ids
    assert out.shape == (3, 6, 8) and ids is not None and ids.shape == (3, 6, 8)
    z = layer.ln(x)
    for g, part in enumerate(group_codes(ids.numpy(), k=2, groups=4)):
        # group g's codes are g * 5 .. g * 5 + 4, chosen by that slice alone
        assert part.min() >= 5 * g and part.max() < 5 * (g + 1)
        codes = layer.codebook[5 * g : 5 * (g + 1)]
        unit = codes / codes.norm(dim=-1, keepdim=True)
        want = (z[..., 2 * g : 2 * g + 2] @ unit.T).topk(2, dim=-1).indices + 5 * g
        assert torch.equal(torch.from_numpy(part).sort(-1).values, want.sort(-1).values)
        # the output's slice is the mean of the slice's chosen codes
        mean = layer.codebook[torch.from_numpy(part)].mean(-2)
        assert torch.allclose(out[..., 2 * g : 2 * g + 2], mean, atol=1e-6)


def test_group_layer_norm_normalises_each_slice() -> None:
    layer = CodebookLayer(d=6, n_codes=3, groups=2)
    x = torch.randn(10, 6) * torch.tensor([1.0, 2, 3, 40, 50, 60]) + 7
    z = layer.ln(x).view(10, 2, 3)
    assert torch.allclose(z.mean(-1), torch.zeros(10, 2), atol=1e-5)
    assert torch.allclose(z.var(-1, unbiased=False), torch.ones(10, 2), atol=1e-3)
    one = CodebookLayer(d=6, n_codes=3)  # one group is plain LayerNorm
    assert torch.allclose(one.ln(x), torch.nn.functional.layer_norm(x, (6,)), atol=1e-6)


def test_groups_must_divide_the_width_and_forcing_is_per_group() -> None:
    with pytest.raises(
        InputError, match=r"groups=5 does not divide the site's width d=8.*\[1, 2, 4, 8\]"
    ):
        CodebookLayer(d=8, n_codes=4, groups=5)
    layer = CodebookLayer(d=8, n_codes=4, k=1, groups=2)
    x = torch.randn(2, 3, 8)
    with force(layer, on=[1, 6]):  # one code in each group: both always chosen
        layer(x)
    assert layer.last_ids is not None
    assert (layer.last_ids[..., 0] == 1).all() and (layer.last_ids[..., 1] == 6).all()
    with pytest.raises(InputError, match="at most k per group"), force(layer, on=[0, 1]):
        pass
    bad_code = "code index 8 does not exist; valid codes are 0..7"
    with pytest.raises(InputError, match=bad_code), force(layer, on=[8]):
        pass


def test_match_scale_and_kmeans_init_per_group() -> None:
    layer = CodebookLayer(d=4, n_codes=2, groups=2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=gen) * torch.tensor([1.0, 1, 10, 10])
    layer.match_scale(x)
    w = layer.ln.weight.detach()
    assert w[0] == w[1] and w[2] == w[3] and 5 < float(w[2] / w[0]) < 20
    # two clear clusters per slice: k-means puts one code on each
    centers = torch.tensor([[3.0, 0], [0, 3.0]])
    z = torch.cat([centers[torch.arange(400) % 2], centers[(torch.arange(400) // 2) % 2]], 1)
    layer.init_from(z + 0.01 * torch.randn(400, 4, generator=gen), kmeans_iters=5)
    for g in range(2):
        got = layer.codebook[2 * g : 2 * g + 2].detach()
        assert torch.allclose(got[got[:, 0].argsort(descending=True)], centers, atol=0.05)


def test_grouped_save_load_and_old_folders(tmp_path) -> None:
    books = Codebooks({"a": 8, "b": 8}, n_codes=3, k=1, groups=2)
    books.save(tmp_path / "g")
    config = json.loads((tmp_path / "g" / CONFIG_NAME).read_text())
    assert (config["groups"], config["codes_per_group"], config["n_codes"]) == (2, 3, 6)
    loaded = Codebooks.load(tmp_path / "g")
    assert (loaded.groups, loaded.codes_per_group, loaded.n_codes) == (2, 3, 6)
    for a, b in zip(books.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # a folder written before groups: no "groups"/"codes_per_group", one group of n_codes
    old = Codebooks({"a": 8}, n_codes=5, k=2)
    old.save(tmp_path / "old")
    config = json.loads((tmp_path / "old" / CONFIG_NAME).read_text())
    for key in ("groups", "codes_per_group"):
        del config[key]
    (tmp_path / "old" / CONFIG_NAME).write_text(json.dumps(config))
    back = Codebooks.load(tmp_path / "old")
    assert (back.groups, back.n_codes, back.k) == (1, 5, 2)
    assert torch.equal(back.layers[0].codebook, old.layers[0].codebook)
    with pytest.raises(InputError, match="not k \\* groups"):
        group_codes(np.zeros((2, 3, 3), dtype=int), k=2, groups=2)
