"""CodebookLayer: top-k selection, straight-through gradient, dead codes, forcing, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from analyses.codebook.layer import CodebookLayer, force
from workbench.errors import InputError


def _layer(d: int = 8, n_codes: int = 16, k: int = 3) -> CodebookLayer:
    torch.manual_seed(0)
    layer = CodebookLayer(d, n_codes, k, seed=1)
    with torch.no_grad():  # codes of unequal norms, so that inner product != cosine on raw codes
        layer.codebook.mul_(torch.rand(n_codes, 1) * 5 + 0.1)
    return layer


def test_topk_is_cosine_topk_and_output_is_mean_of_codes() -> None:
    layer = _layer()
    x = torch.randn(4, 5, 8)
    out = layer(x)
    z = F.layer_norm(x, (8,), eps=1e-5)
    cos = F.cosine_similarity(z[..., None, :], layer.codebook[None, None], dim=-1)  # (4, 5, 16)
    expected = cos.topk(3, dim=-1).indices
    assert torch.equal(layer.last_ids.sort(-1).values, expected.sort(-1).values)
    want = layer.codebook[expected].sum(-2) / 3
    torch.testing.assert_close(out, want)


def test_straight_through_gradient() -> None:
    layer = _layer()
    x = torch.randn(2, 6, 8, requires_grad=True)
    g = torch.randn(2, 6, 8)
    (layer(x) * g).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    (F.layer_norm(x2, (8,), eps=1e-5) * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)  # d out / d x := d LN(x) / d x
    want = torch.zeros_like(layer.codebook)
    ids = layer.last_ids.reshape(-1, 3)
    for row, g_row in zip(ids, g.reshape(-1, 8), strict=True):
        want[row] += g_row / 3  # each chosen code gets the output gradient / k
    torch.testing.assert_close(layer.codebook.grad, want)


def test_dead_code_counts_and_replacement() -> None:
    layer = CodebookLayer(4, 6, 1, seed=0)
    with torch.no_grad():
        layer.codebook.copy_(torch.eye(6, 4) * 3)  # codes 4, 5 are zero vectors: never chosen
        layer.codebook[4:] = torch.tensor([-1.0, -1.0, -1.0, -1.0]) * 1e-3
    layer.train()
    x = torch.randn(50, 4)
    layer(x)
    layer(x)
    assert int(layer.counts[4:].sum()) == 0
    chosen = layer.last_ids.unique()
    assert torch.equal(layer.counts[chosen], torch.full((len(chosen),), 2))
    z = layer.ln(x).detach()
    n = layer.replace_dead_codes(z, rho=0.0)
    assert n == 6 - len(chosen)
    dead_rows = layer.codebook[4:]
    assert all(any(torch.allclose(r, zr) for zr in z) for r in dead_rows)  # rows of z
    assert int(layer.counts.sum()) == 0


def test_forcing_on_and_off() -> None:
    layer = _layer(k=2)
    x = torch.randn(3, 4, 8)
    layer(x)
    usual = layer.last_ids.clone()
    never = int(torch.bincount(usual.flatten(), minlength=16).argmin())
    common = int(torch.bincount(usual.flatten(), minlength=16).argmax())
    with force(layer, on=[never], positions="last"):
        layer(x)
        assert (layer.last_ids[:, -1] == never).any(-1).all()
        assert torch.equal(layer.last_ids[:, :-1], usual[:, :-1])
    with force(layer, off=[common]):
        layer(x)
        assert not (layer.last_ids == common).any()
    layer(x)
    assert torch.equal(layer.last_ids, usual)  # forcing ends with the block


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: CodebookLayer(8, 4, 5), "k=5 is larger"),
        (lambda: CodebookLayer(0, 4, 1), "d must be"),
        (lambda: _layer()(torch.randn(2, 7)), "does not match the site's last dim 7"),
        (lambda: force(_layer(), on=[16]).__enter__(), "code index 16 does not exist"),
        (lambda: force(_layer(), off=[-1]).__enter__(), "code index -1 does not exist"),
        (lambda: force(_layer(k=1), on=[0, 1]).__enter__(), "at most k"),
    ],
)
def test_bad_input(build, match: str) -> None:
    with pytest.raises(InputError, match=match):
        build()
