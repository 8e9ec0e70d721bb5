"""Representation similarity of two activation matrices of the same datapoints: SVCCA, CCA, PWCCA,
CKA (linear, debiased linear, RBF) and orthogonal Procrustes.

CLI names `svcca`, `cca`, `pwcca`, `cka`, `procrustes`; each reads `source.matrix()` (n, d_a) and
`source.matrix_b()` (n, d_b) (rows = datapoints, METHODS.md 2: the transpose of google/svcca's
layout). Definitions and conventions: `analyses/similarity/cca.py` (CCA family, Procrustes) and
`analyses/similarity/cka.py` (CKA). Headline (`--json`): `similarity`, plus `correlations` (descending)
for the CCA family, the kept directions, the number of rows, and `warnings` (fewer rows than
neurons: biased estimators). Plain CCA also reports `method`: "covariance" (Cholesky whitening,
when both layers are well conditioned) or "svd", and `condition` (the 1-norm condition numbers
of the column-scaled covariances; `analyses/similarity/cca.py` gives the thresholds).

Streaming (`stream=true`, or automatically for stores over `memory_limit_mb`): the CCA family
and Procrustes from the R factor of the stacked rows accumulated batch by batch (exact), linear
CKA from accumulated moments (exact, biased and debiased), RBF CKA as minibatch CKA.

Python API: `analyses.similarity.compare.compare(a, b, measure="svcca", **settings) -> Comparison`
on arrays, and the `run(source, params)` functions of `ANALYSES` on a `Source` (arrays or stores).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from analyses.similarity.compare import (
    MEASURES,
    CCAParams,
    CKAParams,
    Comparison,
    SVCCAParams,
    _compare_arrays,
)
from analyses.similarity.stream import stream_compare
from workbench.analysis.registry import Analysis
from workbench.analysis.results import Result
from workbench.analysis.sources import Source


def _too_big(source: Source, params: Any) -> bool:
    if source.acts is not None or source.store is None or source.site is None:
        return False
    store_b = source.store_b if source.store_b is not None else source.store
    site_b = source.site_b or source.site
    width = source.store.site_info(source.site)["width"] + store_b.site_info(site_b)["width"]
    return source.store.n_rows * width * 8 > params.memory_limit_mb * (1 << 20)


def _compare_source(measure: str, source: Source, params: Any) -> Comparison:
    if params.stream or _too_big(source, params):
        return stream_compare(measure, source, params)
    return _compare_arrays(measure, source.matrix(), source.matrix_b(), params)


def to_result(measure: str, comp: Comparison, params: Any, provenance: dict) -> Result:
    """The tidy `Result` of one comparison: `similarity` (and `distance`), then one row per
    canonical direction (`correlation`, and `weight` for PWCCA) indexed by `direction`."""
    site_a = provenance.get("site", "acts")
    site_b = provenance.get("site_b", provenance.get("site", "acts_b"))
    rows = [{"direction": None, "metric": "similarity", "value": comp.similarity}]
    if "distance" in comp.details:
        rows.append({"direction": None, "metric": "distance", "value": comp.details["distance"]})
    for i, rho in enumerate([] if comp.correlations is None else comp.correlations):
        rows.append({"direction": i, "metric": "correlation", "value": float(rho)})
    for i, w in enumerate([] if comp.weights is None else comp.weights):
        rows.append({"direction": i, "metric": "weight", "value": float(w)})
    frame = pd.DataFrame(rows).assign(site_a=site_a, site_b=site_b)
    headline: dict[str, Any] = {"similarity": comp.similarity, **comp.details}
    if comp.correlations is not None:
        headline["correlations"] = [float(r) for r in comp.correlations]
    if comp.weights is not None:
        headline["weights"] = [float(w) for w in comp.weights]
    headline["warnings"] = comp.warnings
    return Result(
        analysis=measure,
        frame=frame,
        headline=headline,
        params=asdict(params),
        provenance=provenance,
    )


def _runner(measure: str):
    def run(source: Source, params: Any) -> Result:
        return to_result(
            measure, _compare_source(measure, source, params), params, source.provenance
        )

    run.__doc__ = f"{measure} of source.matrix() vs source.matrix_b() (see the module docstring)."
    return run


run_svcca, run_cca, run_pwcca, run_cka, run_procrustes = (_runner(m) for m in MEASURES)

ANALYSES = [
    Analysis(
        "svcca",
        SVCCAParams,
        run_svcca,
        ("acts", "acts_b"),
        "SVCCA (Raghu et al. 2017): mean CCA of the top-99%-variance directions",
    ),
    Analysis(
        "cca",
        CCAParams,
        run_cca,
        ("acts", "acts_b"),
        "mean canonical correlation of two representations (covariance or SVD route)",
    ),
    Analysis(
        "pwcca",
        CCAParams,
        run_pwcca,
        ("acts", "acts_b"),
        "projection-weighted CCA (Morcos et al. 2018)",
    ),
    Analysis(
        "cka",
        CKAParams,
        run_cka,
        ("acts", "acts_b"),
        "CKA (Kornblith et al. 2019): linear, debiased, RBF, minibatch",
    ),
    Analysis(
        "procrustes",
        CCAParams,
        run_procrustes,
        ("acts", "acts_b"),
        "orthogonal Procrustes similarity/distance (Ding et al. 2021)",
    ),
]
