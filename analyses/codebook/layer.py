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

Groups (the reference's `GroupCodebookLayer`, "multiple codebooks per layer" in the paper): with
`groups` = G the d dims are cut into G consecutive slices of d / G (`x.chunk(G, -1)`), and each
slice has its own LayerNorm and its own codebook of `n_codes` codes, with its own top-k; the
outputs are concatenated back. Code ids are global: group g's codes are
g * n_codes .. (g + 1) * n_codes - 1, so a token chooses G * k codes (group g's in columns
g * k .. (g + 1) * k - 1 of `last_ids`). G = 1 is the plain layer (same parameters, same saved
state).

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

import numpy as np
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


class GroupLayerNorm(nn.Module):
    """LayerNorm over each of `groups` consecutive d / groups slices of the last dim, each slice
    with its own affine (weight, bias: (d,), the slices' gains side by side). groups = 1 is
    `nn.LayerNorm(d, eps)` with the same parameter names."""

    def __init__(self, d: int, groups: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.d, self.groups, self.eps = d, groups, eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.unflatten(-1, (self.groups, self.d // self.groups))
        normed = nn.functional.layer_norm(parts, parts.shape[-1:], eps=self.eps)
        return normed.flatten(-2) * self.weight + self.bias


class CodebookLayer(nn.Module):
    """Top-k codebook bottleneck over the last dim of (..., d) activations.

    Args:
        d: width of the site (the last dim of its output).
        n_codes: codes per group (the reference's default is 10000).
        k: codes per token and group (the reference's default is 8).
        seed: seed of the initial codes, N(0, 1) rows (the reference's default init).
        groups: codebooks side by side, each over d / groups dims (module docstring).

    Attributes:
        n_codes: codes in all groups (groups x the `n_codes` argument): code ids are 0..n_codes-1.
        codes_per_group: the `n_codes` argument.
        codebook: (n_codes, d / groups) parameter (group g's codes in rows g * codes_per_group..).
        counts: (n_codes,) training forward passes in which each code was chosen.
        last_ids: (..., groups * k) code ids chosen in the last forward pass (None before any).
        last_z: (..., d) normalised input of the last forward pass (detached).
        last_out: (..., d) output of the last forward pass (keeps its graph, for the
            reconstruction loss).
    """

    counts: torch.Tensor

    def __init__(self, d: int, n_codes: int, k: int = 1, seed: int = 0, groups: int = 1) -> None:
        super().__init__()
        for name, value in (("d", d), ("n_codes", n_codes), ("k", k), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if k > n_codes:
            raise InputError(
                f"k={k} is larger than the codebook (n_codes={n_codes}); use k <= n_codes"
            )
        if d % groups:
            divisors = [g for g in range(1, d + 1) if d % g == 0]
            raise InputError(
                f"groups={groups} does not divide the site's width d={d}; use one of {divisors}"
            )
        self.d, self.k, self.groups = d, k, groups
        self.codes_per_group, self.n_codes = n_codes, n_codes * groups
        gen = torch.Generator().manual_seed(seed)
        self.codebook = nn.Parameter(torch.randn(self.n_codes, d // groups, generator=gen))
        self.ln = GroupLayerNorm(d, groups, eps=1e-5)
        self.register_buffer(
            "counts", torch.zeros(self.n_codes, dtype=torch.long), persistent=False
        )
        self.forcing: Forcing | None = None
        self.last_ids: torch.Tensor | None = None
        self.last_z: torch.Tensor | None = None
        self.last_out: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"d={self.d}, n_codes={self.codes_per_group}, k={self.k}, groups={self.groups}"

    def grouped(self, t: torch.Tensor) -> torch.Tensor:
        """(..., groups, last / groups) view of a (..., last) tensor: the slices per group."""
        return t.unflatten(-1, (self.groups, t.shape[-1] // self.groups))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """(..., n_codes) inner products of each group's slice of z (..., d) with that group's
        unit-normalised codes, at the codes' global ids."""
        unit = self.codebook / self.codebook.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        per_group = unit.unflatten(0, (self.groups, self.codes_per_group))  # (G, n, d/G)
        scores = torch.einsum("...gi,gni->...gn", self.grouped(z), per_group)
        return scores.flatten(-2)

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
            local = self.grouped(logits).topk(self.k, dim=-1).indices  # (..., G, k)
            offsets = torch.arange(self.groups, device=local.device)[:, None]
            ids = (local + offsets * self.codes_per_group).flatten(-2)  # (..., G * k) global
        # (..., G, k, d/G) -> sum / k per group -> (..., d)
        codes = self.codebook[self.grouped(ids)].mean(dim=-2).flatten(-2)
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
        z = self.grouped(z.reshape(-1, self.d))  # (n, G, d/G)
        dead = torch.nonzero(self.counts == 0).flatten()
        if len(dead) and len(z):
            gen = torch.Generator().manual_seed(seed)
            rows = torch.randint(len(z), (len(dead),), generator=gen)
            new = z[rows.to(z.device), dead // self.codes_per_group].to(self.codebook)
            noise = torch.randn(new.shape, generator=gen).to(new)
            self.codebook[dead] = new + rho * new.norm(dim=-1, keepdim=True) * noise
        self.counts.zero_()
        return len(dead)

    @torch.no_grad()
    def match_scale(self, x: torch.Tensor) -> None:
        """Set each group's LayerNorm gain to the mean per-token standard deviation of its
        slice of x (n, d) and its bias to the slice's mean per-token mean, so that LN(x) keeps
        the scale of the site it replaces: the layer's output takes the place of x in the
        model, and a unit-scale LN(x) at a residual stream changes how much the later blocks'
        additions weigh (fsm-lm block 0: next-token validity 0.915 -> 0.815 with LN(x) in place
        of x, 0.91 with the matched scale)."""
        x = self.grouped(x.reshape(-1, self.d).to(self.codebook))  # (n, G, d/G)
        if len(x) == 0:
            raise InputError("match_scale needs at least one row of activations")
        std = x.var(dim=-1, unbiased=False).add(self.ln.eps).sqrt().mean(0)  # (G,)
        width = self.d // self.groups
        self.ln.weight.copy_(std.repeat_interleave(width))
        self.ln.bias.copy_(x.mean(dim=(0, 2)).repeat_interleave(width))

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, seed: int = 0, kmeans_iters: int = 0) -> None:
        """Initialise each group's codes as distinct random rows of its slice of normalised
        activations z (n, d), then run `kmeans_iters` Lloyd steps under the layer's own
        assignment (top-1 of `logits`; each code moves to the mean of the rows it wins, a code
        that wins none stays): the reference's `kmeans_init`, in the layer's similarity."""
        z = self.grouped(z.reshape(-1, self.d).to(self.codebook))  # (n, G, d/G)
        n = self.codes_per_group
        if len(z) == 0:
            raise InputError("need at least one row of activations to initialise the codes")
        gen = torch.Generator().manual_seed(seed)
        for g in range(self.groups):
            if len(z) >= n:
                rows = torch.randperm(len(z), generator=gen)[:n]
                new = z[rows.to(z.device), g]
            else:  # fewer rows than codes: repeats, told apart by rho * |z| noise
                new = z[torch.randint(len(z), (n,), generator=gen).to(z.device), g]
                noise = torch.randn(new.shape, generator=gen).to(new)
                new = new + 1e-2 * new.norm(dim=-1, keepdim=True) * noise
            self.codebook[g * n : (g + 1) * n] = new
        flat = z.flatten(-2)
        for _ in range(kmeans_iters):
            ids = self.grouped(self.logits(flat)).argmax(-1)  # (n, G) local
            ids = ids + torch.arange(self.groups, device=ids.device) * n
            sums = torch.zeros_like(self.codebook).index_add_(0, ids.flatten(), z.flatten(0, 1))
            counts = torch.bincount(ids.flatten(), minlength=self.n_codes)
            won = counts > 0
            self.codebook[won] = sums[won] / counts[won, None].to(sums)


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
    per_group = np.bincount([c // layer.codes_per_group for c in set(on_t)], minlength=1)
    if per_group.max() > layer.k:
        raise InputError(
            f"cannot force {int(per_group.max())} codes of one group on with k={layer.k}; force "
            f"at most k per group (group g holds codes g * {layer.codes_per_group} onwards)"
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
