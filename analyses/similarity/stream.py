"""One comparison streamed from row batches, for stores larger than memory: the CCA family and
Procrustes from the R factor of the stacked rows (`analyses.similarity.streaming.StackedR`,
exact), linear CKA from accumulated moments (exact), RBF CKA as minibatch CKA.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analyses.similarity import cca as _cca
from analyses.similarity import cka as _cka
from analyses.similarity.compare import Comparison, from_bases
from analyses.similarity.streaming import StackedR, row_batches, shuffled_batches
from workbench.analysis.sources import Source
from workbench.errors import InputError


def stream_compare(measure: str, source: Source, params: Any) -> Comparison:
    """A single comparison of `source.matrix()` vs `source.matrix_b()` from row batches."""
    if source.acts is not None:
        readers: list[Any] = [np.asarray(source.acts).reshape(len(source.acts), -1)]
    else:
        readers = [(source.store, source.site)]
    if source.acts_b is not None:
        readers.append(np.asarray(source.acts_b).reshape(len(source.acts_b), -1))
    elif source.store_b is not None or source.site_b is not None:
        store_b = source.store_b if source.store_b is not None else source.store
        readers.append((store_b, source.site_b or source.site))
    else:
        source.matrix_b()  # raises the message naming the missing input
    counts = [len(r) if isinstance(r, np.ndarray) else r[0].n_rows for r in readers]
    if counts[0] != counts[1]:
        raise InputError(
            f"acts has {counts[0]} rows but acts_b has {counts[1]}: both must hold the same "
            "datapoints"
        )
    n = counts[0]
    widths = [
        r.shape[1] if isinstance(r, np.ndarray) else r[0].site_info(r[1])["width"] for r in readers
    ]
    notes = _cca.rows_warning(n, widths[0], widths[1])
    if measure == "cka" and (params.kernel != "linear" or params.minibatch > 0):
        est = _cka.MinibatchCKA(params.kernel, params.rbf_threshold)
        for x, y in shuffled_batches(readers, n, params.minibatch or 1024, params.seed):
            est.update(x, y)
        details = {
            "n_rows": n,
            "dims": widths,
            "minibatches": est.n_batches,
            "estimator": "minibatch unbiased HSIC_1",
            "streamed": True,
        }
        return Comparison("cka", est.cka_, details=details, warnings=notes)
    if measure == "cka":
        moments = _cka.LinearMoments()
        for x, y in row_batches(readers, n, params.batch_size):
            moments.update(x, y)
        details = {"n_rows": n, "dims": widths, "streamed": True}
        return Comparison("cka", moments.cka(params.debiased), details=details, warnings=notes)
    acc = StackedR()
    for batch in row_batches(readers, n, params.batch_size):
        acc.update(batch)
    blocks = acc.centred_blocks()
    a, b = (_cca.decompose(x, params.rtol, centre=False, n_rows=n) for x in blocks)
    result = from_bases(measure, a, b, params)
    result.details["streamed"] = True
    result.warnings = notes
    return result
