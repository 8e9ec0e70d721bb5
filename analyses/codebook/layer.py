"""`CodebookLayer`: a vector-quantisation bottleneck of codebook features (Tamkin, Taufeeque,
Goodman 2023, "Codebook Features: Sparse and Discrete Interpretability for Neural Networks"),
following taufeeque9/codebook-features `codebook_features/models.py` (METHODS.md section 4):

- z = LayerNorm(x) (eps 1e-5, affine);
- logits = z . C_j^T / |C_j| (inner product with normalised codes; for a fixed token the ranking
  equals cosine similarity, since dividing by |z| does not change it);
- ids = top-k(logits) per token (one matmul + one `topk` for the whole batch, no Python loop);
- out = sum_{j in ids} C_j / k (the reference code divides by k; the paper says "sum");
- the layer returns `out` (it replaces the normalised input);
- backward: straight-through to the input (d out / d x := d z / d x), and the task gradient into
  the k chosen codes through the gather (the `'base'` snap backward). The reconstruction term
  mean |out - z|^2 of the `'aeloss'` convention is added by the trainer (`reconstruction_loss`).

Dead codes (`update_metrics`/`replace_dead_codes` of the reference): `counts[unique(ids)] += 1`
on every training forward pass; `replace_dead_codes(z)` swaps codes with count 0 for random rows
of z plus `rho * |z| * N(0, 1)` noise and resets the counts.

Forcing (steering, `force`): codes switched on get logit +inf and codes switched off -inf before
the top-k at the chosen positions, so a forced-on code is always among the k codes and a
forced-off code never is (the reference's `disable_codes`, and its "activate a code").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from workbench.errors import InputError


@dataclass(frozen=True)
class Forcing:
    """Codes forced on (`on`) or off (`off`) at `positions` ("all", "last" or a position index
    of the site's (batch, pos, d) input)."""

    on: tuple[int, ...] = ()
    off: tuple[int, ...] = ()
    positions: str | int = "all"


class CodebookLayer(nn.Module):
    """Top-k codebook bottleneck over the last dim of (..., d) activations.

    Args:
        d: width of the site (the last dim of its output).
        n_codes: codebook size (the reference's default is 10000).
        k: codes per token (the reference's default is 8).
        seed: seed of the initial codes, N(0, 1) rows (the reference's default init).

    Attributes:
        codebook: (n_codes, d) parameter.
        counts: (n_codes,) training forward passes in which each code was chosen.
        last_ids: (..., k) code ids chosen in the last forward pass (None before any).
        last_z: (..., d) normalised input of the last forward pass (detached).
        last_out: (..., d) output of the last forward pass (keeps its graph, for the
            reconstruction loss).
    """

    counts: torch.Tensor

    def __init__(self, d: int, n_codes: int, k: int = 1, seed: int = 0) -> None:
        super().__init__()
        for name, value in (("d", d), ("n_codes", n_codes), ("k", k)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if k > n_codes:
            raise InputError(
                f"k={k} is larger than the codebook (n_codes={n_codes}); use k <= n_codes"
            )
        self.d, self.n_codes, self.k = d, n_codes, k
        gen = torch.Generator().manual_seed(seed)
        self.codebook = nn.Parameter(torch.randn(n_codes, d, generator=gen))
        self.ln = nn.LayerNorm(d, eps=1e-5)
        self.register_buffer("counts", torch.zeros(n_codes, dtype=torch.long), persistent=False)
        self.forcing: Forcing | None = None
        self.last_ids: torch.Tensor | None = None
        self.last_z: torch.Tensor | None = None
        self.last_out: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"d={self.d}, n_codes={self.n_codes}, k={self.k}"

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """(..., n_codes) inner products of z (..., d) with the unit-normalised codes."""
        unit = self.codebook / self.codebook.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return z @ unit.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.d:
            raise InputError(
                f"codebook dimension {self.d} does not match the site's last dim {x.shape[-1]} "
                f"(input shape {tuple(x.shape)}); build the layer with d={x.shape[-1]}"
            )
        z = self.ln(x)
        with torch.no_grad():
            logits = self.logits(z)
            if self.forcing is not None:
                _apply_forcing(logits, self.forcing)
            ids = logits.topk(self.k, dim=-1).indices  # (..., k)
        codes = self.codebook[ids].mean(dim=-2)  # (..., d): sum / k
        # Straight-through: value = codes, gradient to x as if the layer returned z.
        out = codes + (z - z.detach())
        if self.training:
            self.counts[ids.unique()] += 1
        self.last_ids, self.last_z, self.last_out = ids, z.detach(), codes
        return out

    @torch.no_grad()
    def replace_dead_codes(self, z: torch.Tensor, rho: float = 1e-4, seed: int = 0) -> int:
        """Replace codes with count 0 by random rows of z (n, d) plus rho * |z| * N(0, 1) noise,
        reset the counts, and return how many were replaced (reference `replace_dead_codes`)."""
        z = z.reshape(-1, self.d)
        dead = torch.nonzero(self.counts == 0).flatten()
        if len(dead) and len(z):
            gen = torch.Generator().manual_seed(seed)
            rows = torch.randint(len(z), (len(dead),), generator=gen)
            new = z[rows].to(self.codebook)
            noise = torch.randn(new.shape, generator=gen).to(new)
            self.codebook[dead] = new + rho * new.norm(dim=-1, keepdim=True) * noise
        self.counts.zero_()
        return len(dead)

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, seed: int = 0) -> None:
        """Initialise the codes as distinct random rows of normalised activations z (n, d)."""
        z = z.reshape(-1, self.d)
        if len(z) < self.n_codes:
            raise InputError(
                f"need at least n_codes={self.n_codes} rows to initialise, got {len(z)}"
            )
        gen = torch.Generator().manual_seed(seed)
        self.codebook.copy_(z[torch.randperm(len(z), generator=gen)[: self.n_codes]])


def _apply_forcing(logits: torch.Tensor, forcing: Forcing) -> None:
    """Set forced-on codes to +inf and forced-off codes to -inf at the forced positions."""
    if forcing.positions == "all" or logits.ndim < 3:
        view = logits
    elif forcing.positions == "last":
        view = logits[:, -1]
    else:
        view = logits[:, int(forcing.positions)]
    if forcing.off:
        view[..., list(forcing.off)] = float("-inf")
    if forcing.on:
        view[..., list(forcing.on)] = float("inf")


@contextmanager
def force(
    layer: CodebookLayer,
    on: Sequence[int] = (),
    off: Sequence[int] = (),
    positions: str | int = "all",
) -> Iterator[CodebookLayer]:
    """Force codes `on` (always among the k chosen) and `off` (never chosen) inside the block."""
    on_t, off_t = tuple(int(c) for c in on), tuple(int(c) for c in off)
    bad = [c for c in on_t + off_t if not 0 <= c < layer.n_codes]
    if bad:
        raise InputError(
            f"code index {bad[0]} does not exist; valid codes are 0..{layer.n_codes - 1}"
        )
    if len(set(on_t)) > layer.k:
        raise InputError(
            f"cannot force {len(set(on_t))} codes on with k={layer.k}; force at most k"
        )
    if set(on_t) & set(off_t):
        raise InputError(f"codes {sorted(set(on_t) & set(off_t))} are forced both on and off")
    if not (positions in ("all", "last") or isinstance(positions, int)):
        raise InputError(f"positions must be 'all', 'last' or an int, got {positions!r}")
    previous = layer.forcing
    layer.forcing = Forcing(on_t, off_t, positions)
    try:
        yield layer
    finally:
        layer.forcing = previous


@contextmanager
def insert_codebooks(
    handle, layers: dict[str, CodebookLayer]
) -> Iterator[dict[str, CodebookLayer]]:
    """Splice `layers` (site name -> layer) into `handle`'s forward passes inside the block,
    through the core's intervention API (`Splice` edits under `intervene`); no model class is
    edited, and the model is exactly as before once the block exits."""
    from workbench.hooks.intervene import Splice, intervene
    from workbench.sites.names import expand_sites

    for site in layers:
        if expand_sites(handle.sites(), site) != [site]:
            raise InputError(f"codebook site {site!r} must name exactly one site, not a pattern")
    with intervene(handle, [Splice(site, layer) for site, layer in layers.items()]):
        yield layers
