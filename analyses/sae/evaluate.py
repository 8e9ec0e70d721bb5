"""Evaluate an SAE over every row of an array or a store site, streaming (memory: one batch)."""

from __future__ import annotations

from typing import Any

import torch

from analyses.sae import metrics
from analyses.sae.base import SparseAutoencoder
from analyses.sae.data import as_row_source
from workbench.errors import InputError


def check_width(sae: SparseAutoencoder, d_in: int, origin: str = "the activations") -> None:
    if d_in != sae.d_in:
        raise InputError(
            f"{origin} have width {d_in} but the SAE has d_in = {sae.d_in}; use the site it "
            "was trained on"
        )


@torch.no_grad()
def accumulate(
    sae: SparseAutoencoder, data: Any, site: str | None = None, batch_size: int = 8192
) -> metrics.ReconstructionSums:
    """`ReconstructionSums` of `sae` over every row of `data` (array, tensor, store + site)."""
    source = as_row_source(data, site)
    check_width(sae, source.d_in, f"site {source.site!r}" if source.site else "the activations")
    sums = metrics.ReconstructionSums(sae.d_in, sae.d_sae)
    sae.eval()
    param = sae.W_enc  # rows go where the SAE is (a GPU), in its dtype
    for batch in source.sequential(batch_size):
        x = torch.from_numpy(batch).to(device=param.device, dtype=param.dtype)
        z = sae.encode(x)
        sums.update(x, sae.decode(z), z)
    return sums


def evaluate(
    sae: SparseAutoencoder,
    data: Any,
    site: str | None = None,
    batch_size: int = 8192,
    dense_threshold: float = 0.1,
) -> dict[str, float]:
    """Every scalar metric of `analyses.sae.metrics.summary` over the rows of `data`."""
    return metrics.summary(accumulate(sae, data, site, batch_size), dense_threshold)
