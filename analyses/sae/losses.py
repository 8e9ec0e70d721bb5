"""Loss terms shared by the architectures (batch-level; the evaluation metrics live in
`analyses.sae.metrics` as ratios of sums over a whole set)."""

from __future__ import annotations

import torch


def normalized_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """sum_b ||target - prediction||^2 / sum_b ||target - mean_b(target)||^2 over a batch
    (batch, d): the normalised MSE of Gao et al. 2024 (openai `kernels.normalized_mse`), 1 for
    predicting the batch mean. The denominator is clamped at 1e-12 (a constant batch)."""
    error = (target - prediction).pow(2).sum()
    variance = (target - target.mean(dim=0, keepdim=True)).pow(2).sum()
    return error / variance.clamp_min(1e-12)


def auxk_loss(
    w_dec: torch.Tensor,
    pre_activations: torch.Tensor,
    residual: torch.Tensor,
    dead: torch.Tensor | None,
    k_aux: int,
) -> torch.Tensor:
    """AuxK loss (Gao et al. 2024, section A.2): the top-`k_aux` pre-activations among the dead
    latents, decoded through W_dec (no bias), predict the residual x - x_hat of the main
    reconstruction; the loss is their normalised MSE (`normalized_mse`), scaled by
    min(n_dead / k_aux, 1) as SAELens does so that a few dead latents weigh little. 0 when no
    latent is dead.

    Shapes: W_dec (d_sae, d_in), pre_activations (batch, d_sae), residual (batch, d_in) (the
    caller detaches it), dead (d_sae,) bool.
    """
    if dead is None:
        return pre_activations.new_zeros(())
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre_activations.new_zeros(())
    k = min(k_aux, n_dead)
    masked = pre_activations.masked_fill(~dead, float("-inf"))
    top = masked.topk(k, dim=-1, sorted=False)
    values = torch.relu(top.values)
    # decode only the k chosen rows: (batch, k) x gathered (batch, k, d_in) would be large;
    # a scatter into a dense (batch, d_sae) matrix keeps it one matmul.
    acts = torch.zeros_like(pre_activations).scatter_(-1, top.indices, values)
    prediction = acts @ w_dec
    return min(n_dead / k_aux, 1.0) * normalized_mse(prediction, residual)
