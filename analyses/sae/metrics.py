"""Evaluation metrics as pure functions over accumulated sums (SAELens `evals.py` definitions;
METHODS.md section 3.3).

`ReconstructionSums` accumulates, over any number of batches, the sums each metric needs
(float64); every metric is then a function of the sums alone, so a streamed evaluation equals
the in-memory one and no metric is a mean of per-batch ratios. For rows x_i (d_in), their
reconstructions x_hat_i and latents z_i (d_sae), i = 1..n:

- `l0` = (1/n) sum_i #{j : z_ij > 0};
- `mse` = (1/n) sum_i ||x_i - x_hat_i||^2 (summed over dimensions);
- `explained_variance` = 1 - sum_i ||x_i - x_hat_i||^2 / sum_i ||x_i - mean(x)||^2, the mean
  taken per dimension over the whole set, numerator and denominator summed separately; the
  denominator is computed as sum_i ||x_i||^2 - n ||mean||^2 (SAELens's "new" formula, not the
  legacy per-batch ratio). 0 for predicting the mean, 1 for perfect reconstruction;
- `cosine` = (1/n) sum_i <x_i, x_hat_i> / (||x_i|| ||x_hat_i||) (rows with a zero norm count 0);
- `norm_ratio` = (1/n) sum_i ||x_hat_i|| / ||x_i|| (SAELens `l2_ratio`; rows with ||x_i|| = 0
  are skipped);
- `relative_reconstruction_bias` = sum ||x_hat||^2 / sum <x, x_hat> (Rajamanoharan et al.
  2024, eq. 10; 1 when unbiased);
- `density` (d_sae,) = fraction of rows on which each latent fires (z > 0); `dead_fraction` =
  share of latents with density 0 over the evaluated set; `dense_fraction` = share with density
  above `dense_threshold` (default 0.1);
- `density_histogram`: counts of log10(density) of the live latents in fixed bins.

The downstream metric (loss with the SAE spliced in) is `analyses.sae.downstream`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ReconstructionSums:
    """Running sums over rows; `update` with each batch, `merge` two partial sums."""

    d_in: int
    d_sae: int
    n: int = 0
    sum_x: np.ndarray = field(default=None)  # type: ignore[assignment,arg-type]  # (d_in,)
    sum_x_sq: float = 0.0  # sum_i ||x_i||^2
    sum_err_sq: float = 0.0  # sum_i ||x_i - x_hat_i||^2
    sum_xhat_sq: float = 0.0
    sum_dot: float = 0.0  # sum_i <x_i, x_hat_i>
    sum_cos: float = 0.0
    sum_norm_ratio: float = 0.0
    n_norm_ratio: int = 0
    sum_l0: float = 0.0
    fire_counts: np.ndarray = field(default=None)  # type: ignore[assignment,arg-type]  # (d_sae,)

    def __post_init__(self) -> None:
        if self.sum_x is None:
            self.sum_x = np.zeros(self.d_in)
        if self.fire_counts is None:
            self.fire_counts = np.zeros(self.d_sae, dtype=np.int64)

    @torch.no_grad()
    def update(self, x: torch.Tensor, x_hat: torch.Tensor, z: torch.Tensor) -> ReconstructionSums:
        """Add a batch: x, x_hat (batch, d_in), z (batch, d_sae). Sums in float64."""
        x, x_hat = x.double(), x_hat.double()
        fires = z > 0
        x_norm = x.norm(dim=-1)
        xhat_norm = x_hat.norm(dim=-1)
        dot = (x * x_hat).sum(dim=-1)
        denom = x_norm * xhat_norm
        self.n += int(x.shape[0])
        self.sum_x += x.sum(dim=0).cpu().numpy()
        self.sum_x_sq += float(x_norm.pow(2).sum())
        self.sum_err_sq += float((x - x_hat).pow(2).sum())
        self.sum_xhat_sq += float(xhat_norm.pow(2).sum())
        self.sum_dot += float(dot.sum())
        self.sum_cos += float(torch.where(denom > 0, dot / denom.clamp_min(1e-300), 0.0).sum())
        nonzero = x_norm > 0
        self.sum_norm_ratio += float((xhat_norm[nonzero] / x_norm[nonzero]).sum())
        self.n_norm_ratio += int(nonzero.sum())
        self.sum_l0 += float(fires.sum())
        self.fire_counts += fires.sum(dim=0).cpu().numpy().astype(np.int64)
        return self

    def merge(self, other: ReconstructionSums) -> ReconstructionSums:
        """Sums of the union of both sets (a new object)."""
        out = ReconstructionSums(self.d_in, self.d_sae)
        for name in (
            "n",
            "sum_x",
            "sum_x_sq",
            "sum_err_sq",
            "sum_xhat_sq",
            "sum_dot",
            "sum_cos",
            "sum_norm_ratio",
            "n_norm_ratio",
            "sum_l0",
            "fire_counts",
        ):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out


def _per_row(total: float, n: int) -> float:
    return total / n if n else float("nan")


def l0(s: ReconstructionSums) -> float:
    return _per_row(s.sum_l0, s.n)


def mse(s: ReconstructionSums) -> float:
    return _per_row(s.sum_err_sq, s.n)


def total_variance(s: ReconstructionSums) -> float:
    """sum_i ||x_i - mean(x)||^2 = sum_i ||x_i||^2 - n ||mean||^2; 0 when that is below 1e-12
    of sum_i ||x_i||^2 (float64 round-off of a constant set)."""
    if not s.n:
        return float("nan")
    mean = s.sum_x / s.n
    variance = s.sum_x_sq - s.n * float(mean @ mean)
    return variance if variance > 1e-12 * s.sum_x_sq else 0.0


def explained_variance(s: ReconstructionSums) -> float:
    """1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (module docstring); NaN for constant x."""
    variance = total_variance(s)
    return 1.0 - s.sum_err_sq / variance if variance > 0 else float("nan")


def cosine(s: ReconstructionSums) -> float:
    return _per_row(s.sum_cos, s.n)


def norm_ratio(s: ReconstructionSums) -> float:
    return _per_row(s.sum_norm_ratio, s.n_norm_ratio)


def relative_reconstruction_bias(s: ReconstructionSums) -> float:
    return s.sum_xhat_sq / s.sum_dot if s.sum_dot != 0 else float("nan")


def density(s: ReconstructionSums) -> np.ndarray:
    """(d_sae,) fraction of rows on which each latent fired."""
    return s.fire_counts / s.n if s.n else np.full(s.d_sae, np.nan)


def dead_fraction(s: ReconstructionSums) -> float:
    """Share of latents that never fired on the evaluated rows."""
    return float((s.fire_counts == 0).mean())


def dense_fraction(s: ReconstructionSums, dense_threshold: float = 0.1) -> float:
    """Share of latents firing on more than `dense_threshold` of the rows."""
    return float((density(s) > dense_threshold).mean())


def density_histogram(
    densities: np.ndarray, bins: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(counts, edges, n_dead): histogram of log10(density) of the live latents over `edges`
    (default 30 bins from -8 to 0; densities below the first edge count in the first bin)."""
    edges = np.linspace(-8.0, 0.0, 31) if bins is None else np.asarray(bins, dtype=float)
    live = densities[densities > 0]
    logs = np.clip(np.log10(live), edges[0], edges[-1])
    counts, _ = np.histogram(logs, bins=edges)
    return counts, edges, int((densities == 0).sum())


def summary(s: ReconstructionSums, dense_threshold: float = 0.1) -> dict[str, float]:
    """Every scalar metric by name (the headline of `workbench sae eval`)."""
    return {
        "n_rows": float(s.n),
        "explained_variance": explained_variance(s),
        "mse": mse(s),
        "l0": l0(s),
        "cosine": cosine(s),
        "norm_ratio": norm_ratio(s),
        "relative_reconstruction_bias": relative_reconstruction_bias(s),
        "dead_fraction": dead_fraction(s),
        "dense_fraction": dense_fraction(s, dense_threshold),
    }
