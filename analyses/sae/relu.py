"""ReLU + L1 sparse autoencoder ("standard").

z = ReLU((x - b_dec) W_enc + b_enc), x_hat = z W_dec + b_dec (openai/sparse_autoencoder
`model.py::Autoencoder`, with b_pre = b_dec).

Decoder-norm handling (the L1 penalty alone can be cheated by shrinking z and growing W_dec):
- "weighted" (default): loss = mean_b ||x - x_hat||^2 + l1_coeff * mean_b sum_i z_i ||W_dec,i||
  (Anthropic's April 2024 update; SAELens `standard_sae.py`); decoder rows are free;
- "unit": decoder rows constrained to unit norm after every step (gradient's parallel part
  removed) and a plain l1_coeff * mean_b ||z||_1 (Bricken et al. 2023, "Towards
  Monosemanticity").
MSE is summed over dimensions and averaged over the batch (SAELens's convention), so l1_coeff
is in units of squared activation norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from analyses.sae.base import SAEConfig, SparseAutoencoder
from workbench.errors import InputError

DECODER_NORMS = ("weighted", "unit")


@dataclass(frozen=True)
class ReLUConfig(SAEConfig):
    """l1_coeff: sparsity weight (>= 0); decoder_norm: "weighted" or "unit" (module docstring)."""

    l1_coeff: float = 1.0
    decoder_norm: str = "weighted"

    architecture: ClassVar[str] = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.l1_coeff < 0:
            raise InputError(f"l1_coeff must be >= 0, got {self.l1_coeff}")
        if self.decoder_norm not in DECODER_NORMS:
            raise InputError(
                f"decoder_norm {self.decoder_norm!r} is not one of {', '.join(DECODER_NORMS)}"
            )


class ReLUSAE(SparseAutoencoder):
    """ReLU + L1 SAE; see the module docstring."""

    config: ReLUConfig

    def __init__(self, config: ReLUConfig):
        super().__init__(config)
        self.unit_norm_decoder = config.decoder_norm == "unit"

    def activation(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(h)

    def loss(self, x, dead=None):
        z = self.encode(x)
        x_hat = self.decode(z)
        mse = (x_hat - x).pow(2).sum(dim=-1).mean()
        if self.config.decoder_norm == "weighted":
            l1 = (z * self.W_dec.norm(dim=1)).sum(dim=-1).mean()
        else:
            l1 = z.sum(dim=-1).mean()
        loss = mse + self.config.l1_coeff * l1
        return loss, {"mse": mse.detach(), "l1": l1.detach()}, z, x_hat
