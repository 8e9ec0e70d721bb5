"""Train any `torch.nn.Module` in a random subspace: theta = theta_0 + P theta_d
(Li, Farkhoor, Liu & Yosinski, ICLR 2018, section 2).

`SubspaceModel(module, d, projection)` leaves the user's module and its code untouched: its
current parameters are theta_0 (frozen: they receive no gradient), theta_d (d,) starts at 0 and
is the only trainable tensor, and every forward pass calls the module through
`torch.func.functional_call` with theta_0 + P theta_d in place of its parameters. Buffers (for
example batch-norm running statistics) are the module's own and update as usual.

D counts the module's parameters with `requires_grad=True` (each shared parameter once); those
with `requires_grad=False` are not reparametrised and keep their values.

    wrapped = SubspaceModel(model, d=200, projection="fastfood", seed=0)
    optimizer = torch.optim.Adam([wrapped.theta_d], lr=1e-2)
    loss = F.cross_entropy(wrapped(x), y)   # same call signature as `model`
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from analyses.landscape.projections import Projection, make_projection
from workbench.errors import InputError


class SubspaceModel(nn.Module):
    """`module` reparametrised as theta_0 + P theta_d.

    Attributes:
        module: the wrapped module (its parameters are theta_0; never modified here).
        projection: the `Projection` P, (d,) -> (D,).
        theta_d: the trainable (d,) parameter, initialised to zero.
        d, D: subspace and full parameter counts.
    """

    def __init__(
        self,
        module: nn.Module,
        d: int,
        projection: str | Projection = "fastfood",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise InputError(f"SubspaceModel wraps a torch.nn.Module, got {type(module).__name__}")
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise InputError(
                f"{type(module).__name__} has no trainable parameters to reparametrise"
            )
        self.module = module
        self._names = [n for n, _ in named]
        self._shapes = [p.shape for _, p in named]
        self._sizes = [p.numel() for _, p in named]
        dtype, device = named[0][1].dtype, named[0][1].device
        self.D = sum(self._sizes)
        if isinstance(projection, Projection):
            if projection.D != self.D:
                raise InputError(
                    f"the projection maps to D={projection.D}, but the module has D={self.D} "
                    "trainable parameters"
                )
            self.projection = projection.to(device)
        else:
            self.projection = make_projection(projection, d, self.D, seed, dtype, device)
        self.d = self.projection.d
        self.theta_d = nn.Parameter(torch.zeros(self.d, dtype=dtype, device=device))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """[theta_d]: what an optimizer should update (the module's own parameters are
        theta_0 and receive no gradient)."""
        return [self.theta_d]

    def offsets(self) -> dict[str, Tensor]:
        """P theta_d split and reshaped per parameter name (differentiable in theta_d)."""
        flat = self.projection(self.theta_d)
        pieces = torch.split(flat, self._sizes)
        return {
            n: piece.view(s) for n, piece, s in zip(self._names, pieces, self._shapes, strict=True)
        }

    def current_parameters(self) -> dict[str, Tensor]:
        """theta_0 + P theta_d per parameter name (differentiable in theta_d only)."""
        params = dict(self.module.named_parameters())
        return {
            name: params[name].detach() + offset.to(params[name].dtype)
            for name, offset in self.offsets().items()
        }

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return torch.func.functional_call(self.module, self.current_parameters(), args, kwargs)

    @torch.no_grad()
    def merged_state_dict(self) -> dict[str, Tensor]:
        """The module's state dict with theta_0 + P theta_d in place of its parameters: load it
        into a fresh module to use the subspace-trained model without this wrapper."""
        state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        current = self.current_parameters()
        primary = {id(p): n for n, p in self.module.named_parameters()}  # tied weights: once
        for alias, param in self.module.named_parameters(remove_duplicate=False):
            if primary[id(param)] in current:
                state[alias] = current[primary[id(param)]].detach().clone()
        return state

    def extra_repr(self) -> str:
        return f"d={self.d}, D={self.D}, projection={self.projection.kind}"
