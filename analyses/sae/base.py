"""The shape every sparse autoencoder shares: parameters, encode/decode, folding, decoder norms.

Parameters follow SAELens's names and shapes (so its checkpoints load without transposes):

- `W_enc` (d_in, d_sae), `b_enc` (d_sae,), `W_dec` (d_sae, d_in), `b_dec` (d_in,);
- pre-activations h = (x - b_dec) W_enc + b_enc (the openai/sparse_autoencoder `b_pre` is our
  `b_dec`: it is subtracted before encoding and added back after decoding);
- reconstruction x_hat = z W_dec + b_dec, with z = activation(h) given by each architecture.

Each architecture is a frozen config (`SAEConfig` subclass, validation only) and an
`SparseAutoencoder` subclass joined in `analyses.sae.registry`. `loss(x, dead)` returns the
training loss and its named parts; `after_step()` restores any constraint the optimiser step broke
(unit-norm decoder rows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from workbench.errors import InputError


@dataclass(frozen=True)
class SAEConfig:
    """Settings shared by every architecture.

    Attributes:
        d_in: width of the activations (the site's last dimension).
        d_sae: number of latents.
        seed: seed of the weight initialisation.
    """

    d_in: int
    d_sae: int
    seed: int = 0

    architecture: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture, **asdict(self)}


class SparseAutoencoder(nn.Module):
    """Base class: weights, `encode`, `decode`, `forward` (x -> x_hat) over (..., d_in) inputs."""

    config: SAEConfig
    #: whether the decoder rows are kept at unit norm after every step (and their gradient's
    #: parallel component removed), as in Gao et al. 2024 and Bricken et al. 2023.
    unit_norm_decoder: bool = False
    #: the trainer's input normalisation when `TrainConfig.normalize` is unset ("none",
    #: "expected_norm" or "unit_mean_sq"): JumpReLU's threshold and STE bandwidth are in
    #: pre-activation units, so it asks for inputs of a known scale.
    default_normalize: ClassVar[str] = "none"
    #: whether dead-latent resampling may draw a batch row for several latents
    #: (`analyses.sae.resample`); JumpReLU's latents, unshrunk, would stack on their row.
    resample_with_replacement: ClassVar[bool] = True

    def __init__(self, config: SAEConfig):
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        # Tied init (W_enc = W_dec^T) with unit-norm decoder rows, as Gao et al. 2024 (openai
        # train.py) and SAELens do; b_dec is set from the data by the trainer.
        w_dec = torch.randn(config.d_sae, config.d_in, generator=generator)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(w_dec.T.clone().contiguous())
        self.b_enc = nn.Parameter(torch.zeros(config.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(config.d_in))

    @property
    def d_in(self) -> int:
        return self.config.d_in

    @property
    def d_sae(self) -> int:
        return self.config.d_sae

    # -- forward -------------------------------------------------------------------------------

    def check_input(self, x: torch.Tensor) -> None:
        """InputError unless x is (..., d_in) and finite."""
        if x.shape[-1] != self.d_in:
            raise InputError(
                f"activations have width {x.shape[-1]} but the SAE was built for d_in = "
                f"{self.d_in} (shape {tuple(x.shape)}); use the site the SAE was trained on"
            )
        if not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise InputError(
                f"activations contain {bad} NaN/Inf values (shape {tuple(x.shape)}); "
                "an SAE needs finite inputs"
            )

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """h = (x - b_dec) W_enc + b_enc, (..., d_sae)."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def activation(self, h: torch.Tensor) -> torch.Tensor:
        """z from pre-activations h (..., d_sae); each architecture defines it."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent activations z (..., d_sae) of x (..., d_in)."""
        return self.activation(self.pre_activations(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x_hat = z W_dec + b_dec, (..., d_in)."""
        return z @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction x_hat of x (same shape and dtype), for `Splice`."""
        dtype = x.dtype
        x_hat = self.decode(self.encode(x.to(self.W_enc.dtype)))
        return x_hat.to(dtype)

    # -- training ------------------------------------------------------------------------------

    def loss(
        self, x: torch.Tensor, dead: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """(loss, named parts, z, x_hat) for a batch x (batch, d_in); `dead` (d_sae,) bool marks
        latents dead over the trainer's token window (used by auxiliary losses)."""
        raise NotImplementedError

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scale every decoder row to unit norm (rows of norm 0 are left alone)."""
        norms = self.W_dec.norm(dim=1, keepdim=True)
        self.W_dec.div_(torch.where(norms > 0, norms, torch.ones_like(norms)))

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Project out of W_dec.grad each row's component along its (unit) decoder row, so the
        step moves along the unit sphere (openai `unit_norm_decoder_grad_adjustment_`)."""
        if self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec).sum(dim=1, keepdim=True)
        self.W_dec.grad.sub_(parallel * self.W_dec)

    def before_step(self) -> None:
        if self.unit_norm_decoder:
            self.remove_parallel_grad()

    def after_step(self) -> None:
        if self.unit_norm_decoder:
            self.normalize_decoder()

    @torch.no_grad()
    def fold_input_scale(self, scale: float) -> None:
        """Fold a training-time input scaling x' = scale * x into the weights, so the SAE takes
        raw x and returns raw x_hat: W_enc *= scale, W_dec /= scale, b_dec /= scale (pre-
        activations, and so thresholds and latent values, are unchanged)."""
        self.W_enc.mul_(scale)
        self.W_dec.div_(scale)
        self.b_dec.div_(scale)

    @torch.no_grad()
    def reset_latents(
        self, idx: torch.Tensor, source_pre: torch.Tensor
    ) -> list[tuple[nn.Parameter, Any]]:
        """Re-initialise the per-latent state beyond the four weights of latents `idx` (int,
        (n,)) when they are resampled (`analyses.sae.resample`); `source_pre` (n,) is each new
        latent's pre-activation on the row it was drawn from. Returns (parameter, index) pairs
        whose Adam moments must be zeroed. Nothing by default (JumpReLU: thresholds)."""
        return []

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Buffers beyond the four weights that a checkpoint must keep (e.g. a threshold)."""
        return {}
