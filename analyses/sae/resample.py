"""Dead-latent resampling (Bricken et al. 2023, "Towards Monosemanticity", appendix; SAELens's
former "anthropic" resampling), used by the trainer for every architecture.

At a resampling step, each latent silent for the dead window gets a new direction: a row of the
current batch drawn with probability proportional to its squared reconstruction error, centred
(minus b_dec) and normalised. The latent's decoder row becomes that unit vector, its encoder
column the same vector times `ENCODER_SCALE` (0.2) x the mean encoder-column norm of the live
latents, its encoder bias 0, any architecture state reset (`SparseAutoencoder.reset_latents`: a
JumpReLU threshold set to the new latent's pre-activation on its row), and the Adam moments of
all of them are zeroed (a stale moment would undo the reset). Rows are drawn with replacement,
except for architectures that set `resample_with_replacement` False (JumpReLU: identical new
latents would all fire, unshrunk, on their row): then each row gives at most one latent and
the other dead latents wait for the next resampling. The rows are drawn with a generator
seeded from (seed, step), so a resumed run resamples exactly as an uninterrupted one.
"""

from __future__ import annotations

import torch

from analyses.sae.base import SparseAutoencoder

ENCODER_SCALE = 0.2  # Bricken et al. 2023: new encoder rows at 0.2 x the live mean norm


@torch.no_grad()
def resample_dead(
    sae: SparseAutoencoder,
    optimizer: torch.optim.Optimizer,
    dead: torch.Tensor,
    x: torch.Tensor,
    x_hat: torch.Tensor,
    seed: int,
) -> int:
    """Re-initialise the latents marked in `dead` (d_sae,) bool from batch `x` (batch, d_in)
    and its reconstruction `x_hat` (same shape); returns how many were resampled (0 when none
    is dead, or every latent is, or the batch is reconstructed exactly). Drawing without
    replacement, `dead` is left marking only the latents resampled."""
    idx = dead.nonzero().flatten()
    n_dead = int(idx.numel())
    if n_dead == 0 or n_dead == sae.d_sae:
        return 0
    error = (x - x_hat).pow(2).sum(dim=-1).double()
    if not float(error.sum()) > 0:
        return 0
    generator = torch.Generator().manual_seed(int(seed))
    alive_norm = sae.W_enc[:, ~dead].norm(dim=0).mean()
    if not sae.resample_with_replacement:  # one new latent per row: the rest wait
        n_dead = min(n_dead, int((error > 0).sum()))
        dead[idx[n_dead:]] = False  # (in place: the caller learns which were resampled)
        idx = idx[:n_dead]
    rows = torch.multinomial(
        error.cpu(), n_dead, replacement=sae.resample_with_replacement, generator=generator
    )
    sources = x[rows.to(x.device)] - sae.b_dec  # each new latent's row, centred
    directions = sources.float()
    norms = directions.norm(dim=-1, keepdim=True)
    directions = torch.where(norms > 0, directions / norms.clamp_min(1e-12), sae.W_dec[idx])
    sae.W_dec[idx] = directions
    sae.W_enc[:, idx] = directions.T * (ENCODER_SCALE * alive_norm)
    sae.b_enc[idx] = 0.0
    # architecture state, e.g. JumpReLU's thresholds, from each new latent's pre-activation
    # on the row it was drawn from (each row with its own latent's encoder column only:
    # n_dead x d_in, never n_dead x d_sae)
    source_pre = (sources * sae.W_enc[:, idx].T).sum(-1) + sae.b_enc[idx]
    extra = sae.reset_latents(idx, source_pre)
    for param, view in (
        (sae.W_dec, (idx,)),
        (sae.W_enc, (slice(None), idx)),
        (sae.b_enc, (idx,)),
        *extra,
    ):
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][view] = 0.0
    return n_dead
