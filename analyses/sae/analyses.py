"""`sae-eval`: how well a saved sparse autoencoder reconstructs a site's activations.

The registry face of `analyses.sae.evaluate` (the same numbers as `workbench sae eval`), so the
batch runner and `workbench analyze` can evaluate an SAE across sites, stores or checkpoints:

    workbench analyze sae-eval --store DIR --site SITE --set sae=SAE_DIR --json

Metrics (see `analyses.sae.metrics`): explained variance = 1 - sum||x - x_hat||^2 /
sum||x - mean(x)||^2 (numerator and denominator summed separately over all rows), L0, MSE,
cosine, norm ratio, dead and dense fractions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from workbench.analysis.registry import Analysis
from workbench.analysis.results import Result
from workbench.analysis.sources import Source
from workbench.errors import InputError


@dataclass(frozen=True)
class Params:
    """sae: directory of a saved SAE (ours or SAELens's format); dense_threshold: a latent
    firing on more than this fraction of rows counts as dense."""

    sae: str = ""
    dense_threshold: float = 0.1
    batch_size: int = 8192


def run(source: Source, params: Params) -> Result:
    """SAE reconstruction metrics of one store site or one (n, d_in) array."""
    from analyses.sae import evaluate, load_sae

    if not params.sae:
        raise InputError("sae-eval needs the SAE: --set sae=DIR (a directory saved by sae train)")
    sae, meta = load_sae(params.sae)
    if source.store is not None and source.site is not None:
        data, site = source.store, source.site
    else:
        data, site = source.matrix(), None
    metrics = evaluate(sae, data, site, params.batch_size, params.dense_threshold)
    frame = pd.DataFrame(
        [
            {"site": source.site or "arrays", "metric": k, "value": float(v)}
            for k, v in metrics.items()
        ]
    )
    provenance = {**source.provenance, "sae": params.sae, "sae_meta": meta}
    return Result("sae-eval", frame, dict(metrics), asdict(params), provenance)


ANALYSIS = Analysis(
    name="sae-eval",
    params=Params,
    run=run,
    inputs=("acts", "sae"),
    summary="a saved SAE's explained variance, L0, MSE, dead fraction on a site",
)
