"""JumpReLU sparse autoencoder (Rajamanoharan et al. 2024, "Jumping Ahead: Improving
Reconstruction Fidelity with JumpReLU Sparse Autoencoders"; SAELens `jumprelu_sae.py`).

Activation: z = JumpReLU_theta(h) = h * H(h - theta) with a learnable threshold theta_i >= 0 per
latent (H the Heaviside step), so a latent is either off or at its full pre-activation: no
shrinkage. Inference as SAELens's `JumpReLUSAE.encode`: ReLU(h) * (h > theta) (the same for
theta >= 0, which training keeps by projecting theta onto [0, inf) after each step, as SAELens
does). The threshold is stored as `threshold` (SAELens >= 6 trains theta directly, not
log theta; its loader converts an older `log_threshold`, and so does ours).

Loss (the paper's section 3, in normalised units):
    L = NMSE(x_hat, x) + l0_coeff * mean_b ||z||_0 [+ pre_act_coeff * pre-act loss]
NMSE = sum_b ||x - x_hat||^2 / sum_b ||x - mean(x)||^2 (`losses.normalized_mse`, as TopK), so
l0_coeff is the fraction of a batch row's variance a latent must explain to be worth firing:
the paper's lambda is l0_coeff x the batch's mean squared deviation. Neither the JumpReLU nor
the L0 term has a useful gradient for theta (the step's derivative is 0 almost everywhere), so
both backward passes use the paper's straight-through estimators (section 4) with the
rectangle kernel K(u) = 1{|u| < 1/2} of bandwidth epsilon:
    d/dtheta JumpReLU_theta(h) = -(theta / epsilon) K((h - theta) / epsilon)
    d/dtheta H(h - theta)      = -(1 / epsilon) K((h - theta) / epsilon)
and, with `ste_to_input` False (the paper, DeepMind), no gradient reaches h through the step
(h still gets H(h - theta) through the JumpReLU's identity part). True passes the STE to h too
(Anthropic's January 2025 variant, SAELens `jumprelu_ste_to_input`).

Optional pre-activation loss (Anthropic 2025; SAELens `calculate_pre_act_loss`): for the
latents dead over the trainer's window, pre_act_coeff * mean_b sum_i relu(theta_i - h_i)
||W_dec,i||, which pulls a dead latent's pre-activations up to its threshold.

Defaults (measured on planted data and on toy-lm, `benchmarks/RESULTS.md`, section "JumpReLU
SAEs"): the trainer scales inputs to unit mean squared norm (`default_normalize`
"unit_mean_sq"), where epsilon = theta_0 = 0.001 (the paper's values) and l0_coeff 0.02 train
in the 2,000-step default run: 20,000 planted rows (d 48, 3 of 96 directions per row) reach
explained variance 0.955, planted-direction recovery 0.999 and L0 2.7 (the planted 3). At
SAELens's scale (E||x|| = sqrt(d_in), its epsilon 0.05, theta_0 0.01) the same run ended with
the thresholds still rising (L0 4, loss still falling 12% per tenth of the run): Adam moves
theta by about lr per step, so theta must be on a scale it crosses in a few hundred steps.
Decoder rows are kept at unit norm as TopK's (the L0 penalty does not depend on their scale,
so this only removes the scale freedom between W_enc, theta and W_dec). The trainer
resamples dead latents (`analyses.sae.resample`) one batch row per latent, each new
threshold equal to the latent's pre-activation on its row (`reset_latents`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from analyses.sae.base import SAEConfig, SparseAutoencoder
from analyses.sae.losses import normalized_mse
from workbench.errors import InputError

DEFAULT_L0_COEFF = 0.02


def rectangle(u: torch.Tensor) -> torch.Tensor:
    """The rectangle kernel K(u) = 1{-1/2 < u < 1/2} (paper section 4), in u's dtype."""
    return ((u > -0.5) & (u < 0.5)).to(u)


class _Step(torch.autograd.Function):
    """H(h - theta) forward; the paper's STE (section 4) backward: d/dtheta = -(1/eps) K((h -
    theta)/eps), summed over the batch; d/dh the negation when `ste_to_input`, else none."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, theta: torch.Tensor, eps: float, to_input: bool):
        ctx.save_for_backward(h, theta)
        ctx.eps, ctx.to_input = eps, to_input
        return (h > theta).to(h)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        h, theta = ctx.saved_tensors
        ste = rectangle((h - theta) / ctx.eps) / ctx.eps * grad
        grad_theta = -ste.reshape(-1, ste.shape[-1]).sum(0)
        return (ste if ctx.to_input else None), grad_theta, None, None


class _JumpReLU(torch.autograd.Function):
    """h * H(h - theta) forward; backward (section 4): d/dh = H(h - theta) (+ the STE when
    `ste_to_input`), d/dtheta = -(theta/eps) K((h - theta)/eps), summed over the batch."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, theta: torch.Tensor, eps: float, to_input: bool):
        ctx.save_for_backward(h, theta)
        ctx.eps, ctx.to_input = eps, to_input
        return h * (h > theta).to(h)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        h, theta = ctx.saved_tensors
        ste = theta / ctx.eps * rectangle((h - theta) / ctx.eps) * grad
        grad_h = (h > theta).to(h) * grad
        if ctx.to_input:
            grad_h = grad_h + ste
        return grad_h, -ste.reshape(-1, ste.shape[-1]).sum(0), None, None


def jumprelu(h: torch.Tensor, theta: torch.Tensor, eps: float, to_input: bool = False):
    """JumpReLU_theta(h) = h * H(h - theta), (..., d_sae), with the paper's STE for theta."""
    return _JumpReLU.apply(h, theta, eps, to_input)


def step(h: torch.Tensor, theta: torch.Tensor, eps: float, to_input: bool = False):
    """H(h - theta) (..., d_sae) as 0/1 floats, with the paper's STE for theta."""
    return _Step.apply(h, theta, eps, to_input)


@dataclass(frozen=True)
class JumpReLUConfig(SAEConfig):
    """l0_coeff: weight of the L0 penalty in NMSE units (>= 0; module docstring); bandwidth:
    the STE's epsilon (> 0, in pre-activation units); init_threshold: theta_0 (>= 0);
    ste_to_input: pass the STE to the pre-activations too; pre_act_coeff: weight of the pre-
    activation loss on dead latents (>= 0; 0: off)."""

    l0_coeff: float = DEFAULT_L0_COEFF
    bandwidth: float = 0.001
    init_threshold: float = 0.001
    ste_to_input: bool = False
    pre_act_coeff: float = 0.0

    architecture: ClassVar[str] = "jumprelu"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("l0_coeff", "init_threshold", "pre_act_coeff"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
                raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.bandwidth, (int, float)) or not 0 < self.bandwidth < float("inf"):
            raise InputError(f"bandwidth must be a finite number > 0, got {self.bandwidth!r}")


class JumpReLUSAE(SparseAutoencoder):
    """JumpReLU SAE; see the module docstring."""

    config: JumpReLUConfig
    threshold: torch.nn.Parameter
    unit_norm_decoder = True
    default_normalize = "unit_mean_sq"
    resample_with_replacement = False

    def __init__(self, config: JumpReLUConfig):
        super().__init__(config)
        self.threshold = torch.nn.Parameter(torch.full((config.d_sae,), config.init_threshold))

    def activation(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(h) * (h > self.threshold).to(h)

    def loss(self, x, dead=None):
        c = self.config
        h = self.pre_activations(x)
        z = jumprelu(h, self.threshold, c.bandwidth, c.ste_to_input)
        x_hat = self.decode(z)
        mse = normalized_mse(x_hat, x)
        l0 = step(h, self.threshold, c.bandwidth, c.ste_to_input).sum(-1).mean()
        loss = mse + c.l0_coeff * l0
        parts = {"nmse": mse.detach(), "l0": l0.detach()}
        if c.pre_act_coeff > 0:
            pre = pre_act_loss(self.threshold, h, dead, self.W_dec.norm(dim=1))
            loss = loss + c.pre_act_coeff * pre
            parts["pre_act"] = pre.detach()
        return loss, parts, z, x_hat

    @torch.no_grad()
    def after_step(self) -> None:
        super().after_step()
        self.threshold.clamp_(min=0.0)

    @torch.no_grad()
    def reset_latents(
        self, idx: torch.Tensor, source_pre: torch.Tensor
    ) -> list[tuple[torch.nn.Parameter, Any]]:
        """A resampled latent's threshold is its pre-activation on the row it was drawn from:
        at the edge of firing there, it fires on the rows reaching further along its
        direction, and the STE lowers it if firing on its own row would help. At theta_0 a
        new latent fires on about half the rows: on toy-lm (d_sae 1024) resetting about 400
        latents so, several per row, raised the loss 5x within a step, which the trainer
        stops as a divergence."""
        self.threshold[idx] = source_pre.clamp_min(0.0)
        return [(self.threshold, (idx,))]

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {"threshold": self.threshold}


def pre_act_loss(
    threshold: torch.Tensor, h: torch.Tensor, dead: torch.Tensor | None, w_dec_norm: torch.Tensor
) -> torch.Tensor:
    """mean_b sum_i dead_i relu(theta_i - h_bi) ||W_dec,i|| (Anthropic 2025; SAELens
    `calculate_pre_act_loss`): 0 when no latent is dead. Shapes: threshold, dead, w_dec_norm
    (d_sae,); h (batch, d_sae)."""
    if dead is None or not bool(dead.any()):
        return h.new_zeros(())
    return ((threshold - h).relu() * dead * w_dec_norm).sum(-1).mean()
