"""BatchTopK sparse autoencoder (Bussmann, Leask, Nanda 2024, "BatchTopK Sparse Autoencoders").

Training: the k * batch largest entries of ReLU(h) over the whole batch are kept (so the
average L0 is k, but a row may use more or fewer latents). Inference: a single global
threshold theta replaces the batch dependence, z = h * (h > theta); theta is the running mean
of the smallest kept activation of each training batch (the paper's estimate), stored as the
buffer `threshold`. Loss and decoder handling as TopK (NMSE + AuxK, unit-norm decoder rows).
SAELens saves such an SAE as architecture "jumprelu" with a per-latent threshold; our SAELens
export does the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from analyses.sae.base import SAEConfig, SparseAutoencoder
from analyses.sae.losses import auxk_loss, normalized_mse
from workbench.errors import InputError


@dataclass(frozen=True)
class BatchTopKConfig(SAEConfig):
    """k: mean active latents per row over a batch; k_aux, auxk_coef: as TopK; threshold_momentum:
    weight of the newest batch in the running threshold (0 < m <= 1)."""

    k: int = 32
    k_aux: int | None = None
    auxk_coef: float = 1 / 32
    threshold_momentum: float = 0.01

    architecture: ClassVar[str] = "batchtopk"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.k, int) or not 1 <= self.k <= self.d_sae:
            raise InputError(f"k must be an integer in [1, d_sae = {self.d_sae}], got {self.k!r}")
        if not 0 < self.threshold_momentum <= 1:
            raise InputError(f"threshold_momentum must be in (0, 1], got {self.threshold_momentum}")


class BatchTopKSAE(SparseAutoencoder):
    """BatchTopK SAE; see the module docstring."""

    config: BatchTopKConfig
    threshold: torch.Tensor
    unit_norm_decoder = True

    def __init__(self, config: BatchTopKConfig):
        super().__init__(config)
        # threshold < 0 means "not estimated yet": inference then falls back to batch top-k.
        self.register_buffer("threshold", torch.full((config.d_sae,), -1.0))

    def batch_topk(self, h: torch.Tensor) -> torch.Tensor:
        """ReLU(h) with only its k * batch largest entries over the flattened batch kept."""
        flat = torch.relu(h).reshape(-1)
        n_keep = min(flat.numel(), self.config.k * max(1, flat.numel() // self.d_sae))
        top = flat.topk(n_keep, sorted=False)
        return torch.zeros_like(flat).scatter_(0, top.indices, top.values).reshape(h.shape)

    def activation(self, h: torch.Tensor) -> torch.Tensor:
        if self.training or float(self.threshold[0]) < 0:
            return self.batch_topk(h)
        return h * (h > self.threshold)

    def loss(self, x, dead=None):
        h = self.pre_activations(x)
        z = self.batch_topk(h)
        x_hat = self.decode(z)
        with torch.no_grad():
            kept = z[z > 0]
            if kept.numel():
                new = kept.min()
                old = self.threshold[0]
                m = self.config.threshold_momentum
                self.threshold.fill_(
                    float(new) if float(old) < 0 else float((1 - m) * old + m * new)
                )
        mse = normalized_mse(x_hat, x)
        aux = auxk_loss(
            self.W_dec, h, (x - x_hat).detach(), dead, self.config.k_aux or max(1, self.d_in // 2)
        )
        loss = mse + self.config.auxk_coef * aux
        return loss, {"nmse": mse.detach(), "auxk": aux.detach()}, z, x_hat

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {"threshold": self.threshold}
