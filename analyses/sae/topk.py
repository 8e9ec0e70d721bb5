"""TopK sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders";
openai/sparse_autoencoder `train.py::FastAutoencoder`).

z = ReLU(TopK_k(h)): the k largest pre-activations of each row kept, the rest zero.
Loss = NMSE(x_hat, x) + auxk_coef * AuxK, with NMSE normalised by the batch variance of x
(Gao's `mse_scale` uses the variance of the whole data set; per batch is the same up to
sampling noise and needs no pass over the data first). Decoder rows are kept at unit norm and
the gradient's parallel component is removed before each step (Gao et al. section 2.3).
AuxK takes k_aux = d_in // 2 dead latents (the Appendix B.1 heuristic SAELens uses; Gao's
code default is 256) with coefficient 1/32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from analyses.sae.base import SAEConfig, SparseAutoencoder
from analyses.sae.losses import auxk_loss, normalized_mse
from workbench.errors import InputError


@dataclass(frozen=True)
class TopKConfig(SAEConfig):
    """k: active latents per row (1 <= k <= d_sae); k_aux: dead latents used by AuxK (None:
    d_in // 2); auxk_coef: weight of AuxK (Gao et al.: 1/32)."""

    k: int = 32
    k_aux: int | None = None
    auxk_coef: float = 1 / 32

    architecture: ClassVar[str] = "topk"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.k, int) or not 1 <= self.k <= self.d_sae:
            raise InputError(f"k must be an integer in [1, d_sae = {self.d_sae}], got {self.k!r}")
        if self.k_aux is not None and self.k_aux < 1:
            raise InputError(f"k_aux must be >= 1 (or None for d_in // 2), got {self.k_aux}")

    @property
    def k_aux_value(self) -> int:
        return self.k_aux if self.k_aux is not None else max(1, self.d_in // 2)


class TopKSAE(SparseAutoencoder):
    """TopK SAE; see the module docstring."""

    config: TopKConfig
    unit_norm_decoder = True

    def activation(self, h: torch.Tensor) -> torch.Tensor:
        top = h.topk(self.config.k, dim=-1, sorted=False)
        return torch.zeros_like(h).scatter_(-1, top.indices, torch.relu(top.values))

    def loss(self, x, dead=None):
        h = self.pre_activations(x)
        z = self.activation(h)
        x_hat = self.decode(z)
        mse = normalized_mse(x_hat, x)
        aux = auxk_loss(self.W_dec, h, (x - x_hat).detach(), dead, self.config.k_aux_value)
        loss = mse + self.config.auxk_coef * aux
        return loss, {"nmse": mse.detach(), "auxk": aux.detach()}, z, x_hat
