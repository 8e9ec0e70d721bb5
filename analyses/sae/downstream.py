"""The downstream cost of an SAE: the model's next-token loss with the SAE spliced in at its
site, against the clean model and the site ablated ("loss recovered").

loss_recovered = (CE_ablated - CE_sae) / (CE_ablated - CE_clean) (SAELens `ce_loss_score`,
METHODS.md 3.3): 1 when the spliced model is as good as the clean one, 0 when it is no better
than ablating the site. The ablation is recorded: "zero" (SAELens's choice: the site's output
set to 0) or "mean" (replaced by a mean activation, e.g. the store's statistics; gives a
harder, usually more meaningful baseline). CE is the mean over every predicted real token
(positions whose next token is not padding), over all texts together (a ratio of sums).
Splicing and ablating go through `workbench.hooks.intervene` (`Splice`, `ZeroAblate`, `MeanAblate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from analyses.sae.base import SparseAutoencoder
from workbench.errors import InputError
from workbench.hooks.intervene import Edit, MeanAblate, Splice, ZeroAblate, intervene
from workbench.models.losses import loss_sums

ABLATIONS = ("zero", "mean")


def loss_recovered(
    handle: Any,
    sae: SparseAutoencoder,
    site: str,
    texts: Sequence[str],
    ablation: str = "zero",
    mean: np.ndarray | torch.Tensor | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """{"ce_clean", "ce_sae", "ce_ablated", "loss_recovered", "ablation", "n_tokens"} of a
    causal LM `handle` on `texts` with `sae` spliced at `site` (module docstring)."""
    if ablation not in ABLATIONS:
        raise InputError(f"ablation {ablation!r} is not one of {', '.join(ABLATIONS)}")
    if not handle.is_language_model:
        raise InputError(f"loss recovered needs a language model; {handle.info.name!r} is not one")
    if not texts:
        raise InputError("no texts to evaluate the loss on")
    edit: Edit
    if ablation == "zero":
        edit = ZeroAblate(site)
    else:
        if mean is None:
            raise InputError("mean ablation needs `mean` (the site's mean activation, (d_in,))")
        edit = MeanAblate(site, torch.as_tensor(np.asarray(mean), dtype=torch.float32))
    sae.eval()
    clean, n = loss_sums(handle, texts, batch_size)
    with intervene(handle, Splice(site, sae)):
        spliced, _ = loss_sums(handle, texts, batch_size)
    with intervene(handle, edit):
        ablated, _ = loss_sums(handle, texts, batch_size)
    if n == 0:
        raise InputError("the texts hold no predicted tokens (each needs >= 2 tokens)")
    ce_clean, ce_sae, ce_abl = clean / n, spliced / n, ablated / n
    gap = ce_abl - ce_clean
    return {
        "ce_clean": ce_clean,
        "ce_sae": ce_sae,
        "ce_ablated": ce_abl,
        "loss_recovered": (ce_abl - ce_sae) / gap if gap != 0 else float("nan"),
        "ablation": ablation,
        "n_tokens": n,
    }


def score(ce_clean: float, ce_sae: float, ce_ablated: float) -> float:
    """(CE_ablated - CE_sae) / (CE_ablated - CE_clean), the formula alone (for tests and
    for numbers computed elsewhere)."""
    return (ce_ablated - ce_sae) / (ce_ablated - ce_clean)
