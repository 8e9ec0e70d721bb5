"""How much of a layer does the model need? Project the layer onto its top-k SVCCA directions
during the forward pass and measure the next-token loss against k (Raghu et al. 2017, sec. 3.1:
a layer projected onto its top SVCCA directions keeps the network's accuracy with far fewer
directions than neurons).

SVCCA directions of layer A (n, d) against a reference representation B of the same datapoints
(another network's layer, or the same layer at another checkpoint): with the SVCCA reduction
`A_c ~ U S V^T` (top directions explaining `variance`) and `U^T U_B = L diag(rho) R^T`, the i-th
canonical variate is `h_i = A_c w_i` with `W = V S^-1 L`. The rank-k projection keeps the top-k
variates and reconstructs the layer from them by least squares:
`x -> mu + (x - mu) W_k M_k`, `M_k = L_k^T S V^T` (an oblique projection: M_k W_k = I_k).
The baseline keeps the top-k principal directions instead: `x -> mu + (x - mu) V_k V_k^T`.
The edit is an `Apply` at the site (`workbench.hooks.intervene`), so the rest of the model runs on the
projected activations; k = the full SVCCA rank reproduces the layer on the data's span.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from analyses.similarity import cca as _cca
from workbench.analysis.results import Result
from workbench.errors import InputError
from workbench.hooks.intervene import Apply, intervene


def svcca_projection(
    acts: np.ndarray,
    reference: np.ndarray,
    k: int,
    variance: float = 0.99,
    reading: str = "squared",
) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), P (d, d)) of the projection onto the top-k SVCCA directions of `acts` (n, d)
    against `reference` (n, d_ref) (module docstring)."""
    a, b, _ = _cca.check_pair(acts, reference)
    basis = _cca.decompose(a).top(variance, reading)
    other = _cca.decompose(b).top(variance, reading)
    left, _, _ = np.linalg.svd(basis.u.T @ other.u, full_matrices=False)
    if not 1 <= k <= left.shape[1]:
        raise InputError(f"k={k} must lie in [1, {left.shape[1]}] (the number of SVCCA directions)")
    lk = left[:, :k]
    w = basis.vt.T @ (lk / basis.s[:, None])
    m = lk.T @ (basis.s[:, None] * basis.vt)
    assert basis.mean is not None
    return basis.mean, w @ m


def pca_projection(acts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, P) of the projection onto the top-k principal directions of `acts` (n, d)."""
    basis = _cca.decompose(_cca.check_matrix(acts, "acts"))
    if not 1 <= k <= basis.rank:
        raise InputError(f"k={k} must lie in [1, {basis.rank}] (the layer's rank)")
    assert basis.mean is not None
    return basis.mean, basis.vt[:k].T @ basis.vt[:k]


def _edit(site: str, mean: np.ndarray, projection: np.ndarray) -> Apply:
    mu = torch.as_tensor(mean, dtype=torch.float32)
    p = torch.as_tensor(projection, dtype=torch.float32)

    def project(x: torch.Tensor) -> torch.Tensor:
        m, q = mu.to(x.device, x.dtype), p.to(x.device, x.dtype)
        return m + (x - m) @ q

    return Apply(site, project)


def loss(handle: Any, texts: Sequence[str], edit: Apply | None = None, batch_size: int = 32):
    """Mean next-token cross-entropy (nats/token, a ratio of sums over every real predicted
    token) of a causal LM on `texts`, with `edit` applied when given."""
    from workbench.models.losses import loss_sums

    if edit is None:
        total, count = loss_sums(handle, texts, batch_size)
    else:
        with intervene(handle, edit):
            total, count = loss_sums(handle, texts, batch_size)
    return total / count


def compression_curve(
    handle: Any,
    site: str,
    texts: Sequence[str],
    acts: np.ndarray,
    reference: np.ndarray,
    ks: Sequence[int],
    variance: float = 0.99,
) -> Result:
    """Loss of `handle` on `texts` with `site` projected onto its top-k SVCCA directions (vs
    `reference`) and, as the baseline, onto its top-k principal directions, for each k.

    `acts` are the site's activations on these texts (e.g. a store captured from them) from
    which the directions are fitted. Frame: k, method ("svcca" | "pca"), metric "loss", value;
    headline: clean loss, the SVCCA rank, and both curves.
    """
    clean = loss(handle, texts)
    rows = []
    for k in ks:
        for method, (mean, proj) in (
            ("svcca", svcca_projection(acts, reference, k, variance)),
            ("pca", pca_projection(acts, k)),
        ):
            rows.append(
                {
                    "k": k,
                    "method": method,
                    "metric": "loss",
                    "value": loss(handle, texts, _edit(site, mean, proj)),
                }
            )
    frame = pd.DataFrame(rows)
    curves = {m: g.set_index("k")["value"].to_dict() for m, g in frame.groupby("method")}
    headline = {"clean_loss": clean, "site": site, "width": int(acts.shape[1]), **curves}
    return Result(
        "svcca-compression",
        frame,
        headline,
        {"ks": list(ks), "variance": variance},
        {"model": handle.info.name},
    )
