"""Similarity maps: every layer against every layer of one store, every checkpoint's layers
against the final checkpoint, and two models against each other; plus the streaming form of a
single comparison (`analyses.similarity.stream`).

Each layer is decomposed once (`analyses.similarity.cca.decompose`, a thin SVD of the centred layer) and
every pair then costs one (r_a, r_b) product `U_a^T U_b` and its small SVD, instead of two
(n, d) decompositions per pair. With `stream=True` the layers' bases come from the R factor of
all layers' rows accumulated batch by batch (`analyses.similarity.streaming.StackedR`), so a store larger
than memory is read once, in order, with memory O((sum of widths)^2).

Inputs are `ActivationStore`s (or dicts site -> (n, d) array). Two stores compared row by row
must hold the same datapoints: equal row counts and, when both have it, the same example index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analyses.similarity import cca as _cca
from analyses.similarity.cca import Basis
from analyses.similarity.compare import MEASURES, Comparison, default_params, from_bases
from analyses.similarity.streaming import StackedR, row_batches
from workbench.analysis.results import Result
from workbench.errors import InputError

Layers = Any  # an ActivationStore or a Mapping[str, np.ndarray]


def _sites(layers: Layers, sites: Sequence[str] | None) -> list[str]:
    available = list(layers.sites) if hasattr(layers, "sites") else list(layers)
    if sites is None:
        return available
    missing = [s for s in sites if s not in available]
    if missing:
        raise InputError(f"no site(s) {missing}; valid: {', '.join(available)}")
    return list(sites)


def _n_rows(layers: Layers, sites: Sequence[str]) -> int:
    if hasattr(layers, "n_rows"):
        return int(layers.n_rows)
    counts = {len(layers[s]) for s in (sites or list(layers))}
    if len(counts) != 1:
        raise InputError(f"layers have different row counts {sorted(counts)}")
    return counts.pop()


def _reader(layers: Layers, site: str) -> Any:
    return (layers, site) if hasattr(layers, "read") else np.asarray(layers[site])


def _matrix(layers: Layers, site: str) -> np.ndarray:
    x = layers.read(site) if hasattr(layers, "read") else np.asarray(layers[site])
    return _cca.check_matrix(x.reshape(len(x), -1), site)


def layer_bases(
    groups: Sequence[tuple[Layers, Sequence[str]]],
    stream: bool = False,
    batch_size: int = 8192,
    rtol: float = _cca.DEFAULT_RTOL,
) -> list[list[Basis]]:
    """One `Basis` per site of each (layers, sites) group, every layer decomposed once.

    All groups must hold the same rows. With `stream`, one pass over the rows of every layer
    accumulates their joint R factor (the layers' bases are then exactly those of the centred
    layers, up to an orthogonal change of the row space that no measure sees).
    """
    counts = [_n_rows(layers, sites) for layers, sites in groups]
    if len(set(counts)) != 1:
        raise InputError(
            f"the representations hold different numbers of rows {counts}: compare stores "
            "captured on the same examples with the same tokenizer"
        )
    _check_same_examples([layers for layers, _ in groups])
    n = counts[0]
    if not stream:
        return [
            [_cca.decompose(_matrix(layers, s), rtol) for s in sites] for layers, sites in groups
        ]
    readers = [_reader(layers, s) for layers, sites in groups for s in sites]
    acc = StackedR()
    for batch in row_batches(readers, n, batch_size):
        acc.update(batch)
    blocks = iter(acc.centred_blocks())
    return [
        [_cca.decompose(next(blocks), rtol, centre=False, n_rows=n) for _ in sites]
        for _, sites in groups
    ]


def _check_same_examples(stores: Sequence[Layers]) -> None:
    indexes = [s.example_index() for s in stores if hasattr(s, "example_index")]
    for other in indexes[1:]:
        if not np.array_equal(indexes[0], other):
            raise InputError(
                "the stores' rows belong to different examples (example_index differs): "
                "capture both on the same dataset, n_examples and tokenizer"
            )


def _grid(
    measure: str, rows: list[Basis], cols: list[Basis], params: Any, symmetric: bool
) -> np.ndarray:
    out = np.full((len(rows), len(cols)), np.nan)
    for i, a in enumerate(rows):
        for j, b in enumerate(cols):
            if symmetric and j < i and measure != "pwcca":
                out[i, j] = out[j, i]
            else:
                out[i, j] = from_bases(measure, a, b, params).similarity
    return out


def _map_result(
    name: str,
    measure: str,
    matrix: np.ndarray,
    rows: tuple[str, list],
    cols: tuple[str, list],
    params: Any,
    provenance: dict,
    headline: dict,
) -> Result:
    """A map as a Result: frame (rows[0], cols[0], metric = measure, value) with one row per
    cell, headline `matrix` (row i = rows[1][i]) plus `headline`."""
    from dataclasses import asdict

    (row_key, row_labels), (col_key, col_labels) = rows, cols
    frame = pd.DataFrame(
        [
            {row_key: r, col_key: c, "metric": measure, "value": float(matrix[i, j])}
            for i, r in enumerate(row_labels)
            for j, c in enumerate(col_labels)
        ]
    )
    headline = {"measure": measure, **headline, "matrix": matrix.tolist()}
    return Result(name, frame, headline, {"measure": measure, **asdict(params)}, provenance)


def _provenance(layers: Layers) -> dict:
    if hasattr(layers, "path"):
        return {"store": str(layers.path), "spec": layers.spec}
    return {"arrays": True}


def layer_map(
    layers: Layers,
    sites: Sequence[str] | None = None,
    measure: str = "svcca",
    params: Any = None,
    stream: bool = False,
) -> Result:
    """Every layer against every layer of one store: a (L, L) matrix of `measure`.

    Frame: site_a, site_b, metric (= measure), value. Headline: `matrix` (row i = sites[i]).
    Each layer is decomposed once; symmetric measures fill the lower triangle by symmetry
    (PWCCA is not symmetric: every ordered pair is computed).
    """
    params = params or default_params(measure)
    names = _sites(layers, sites)
    (bases,) = layer_bases([(layers, names)], stream, params.batch_size, params.rtol)
    matrix = _grid(measure, bases, bases, params, symmetric=True)
    return _map_result(
        "similarity-layer-map",
        measure,
        matrix,
        ("site_a", names),
        ("site_b", names),
        params,
        _provenance(layers),
        {"sites_a": names, "sites_b": names, "streamed": stream},
    )


def cross_map(
    layers_a: Layers,
    layers_b: Layers,
    sites_a: Sequence[str] | None = None,
    sites_b: Sequence[str] | None = None,
    measure: str = "svcca",
    params: Any = None,
    stream: bool = False,
) -> Result:
    """Every layer of model A against every layer of model B on the same datapoints."""
    params = params or default_params(measure)
    names_a, names_b = _sites(layers_a, sites_a), _sites(layers_b, sites_b)
    bases_a, bases_b = layer_bases(
        [(layers_a, names_a), (layers_b, names_b)], stream, params.batch_size, params.rtol
    )
    matrix = _grid(measure, bases_a, bases_b, params, symmetric=False)
    provenance = {"a": _provenance(layers_a), "b": _provenance(layers_b)}
    return _map_result(
        "similarity-cross-map",
        measure,
        matrix,
        ("site_a", names_a),
        ("site_b", names_b),
        params,
        provenance,
        {"sites_a": names_a, "sites_b": names_b, "streamed": stream},
    )


def checkpoint_map(
    stores: Mapping[int, Layers],
    sites: Sequence[str] | None = None,
    measure: str = "svcca",
    params: Any = None,
    reference_step: int | None = None,
    stream: bool = False,
) -> Result:
    """Each checkpoint's layers against the same layers of the reference (default: the last)
    checkpoint: the bottom-up convergence picture of Raghu et al. 2017 (fig. 4).

    `stores` maps training step -> store (or dict of arrays) captured on the same examples.
    Frame: step, site, metric (= measure), value. Headline: `steps`, `sites`, `matrix`
    (row = step, column = site). The reference's layers are decomposed once.
    """
    params = params or default_params(measure)
    steps = sorted(stores)
    if not steps:
        raise InputError("no checkpoint stores given")
    reference_step = steps[-1] if reference_step is None else reference_step
    if reference_step not in stores:
        raise InputError(f"reference step {reference_step} is not among the steps {steps}")
    names = _sites(stores[reference_step], sites)
    (reference,) = layer_bases(
        [(stores[reference_step], names)], stream, params.batch_size, params.rtol
    )
    matrix = np.full((len(steps), len(names)), np.nan)
    for i, step in enumerate(steps):
        ref = reference
        if step == reference_step:
            bases = reference
        elif stream:  # streamed bases are comparable only within one joint pass
            ref, bases = layer_bases(
                [(stores[reference_step], names), (stores[step], names)],
                True,
                params.batch_size,
                params.rtol,
            )
        else:
            _, bases = layer_bases(
                [(stores[reference_step], []), (stores[step], names)],
                False,
                params.batch_size,
                params.rtol,
            )
        for j, (a, b) in enumerate(zip(bases, ref, strict=True)):
            matrix[i, j] = from_bases(measure, a, b, params).similarity
    return _map_result(
        "similarity-checkpoint-map",
        measure,
        matrix,
        ("step", steps),
        ("site", names),
        params,
        {"stores": {str(s): _provenance(stores[s]) for s in steps}},
        {"reference_step": reference_step, "steps": steps, "sites": names},
    )


def pair_comparisons(
    layers_a: Layers,
    site_a: str,
    layers_b: Layers,
    site_b: str,
    measures: Sequence[str] = MEASURES,
) -> dict[str, Comparison]:
    """Every measure (default settings) for one pair of layers: one cell of a map, seen through
    all measures at once. Each layer is decomposed once; the values equal the map's cell of the
    same measure (`layer_map` row `site_a`, column `site_b`; `checkpoint_map` with `layers_a` the
    checkpoint's store and `layers_b` the reference's; `cross_map`). The CCA family's
    comparisons carry their canonical correlations (the spectrum), descending."""
    groups = [(layers_a, _sites(layers_a, [site_a])), (layers_b, _sites(layers_b, [site_b]))]
    (a,), (b,) = layer_bases(groups)
    return {m: from_bases(m, a, b, default_params(m)) for m in measures}


def capture_checkpoints(
    series: Any,
    sites: str | Sequence[str],
    examples: Sequence[Any],
    out: str | Path,
    steps: Sequence[int | str] | None = None,
    *,
    device: str = "auto",
    **capture_kwargs: Any,
) -> dict[int, Any]:
    """Capture `examples` at `sites` for every checkpoint of `series` (a `CheckpointSeries`, zoo
    name or series folder) into `out/step<N>/` stores (resumable; finished stores are reused).
    Returns step -> store, ascending. Only one checkpoint is loaded at a time.

    The same as `workbench.analysis.checkpoints.capture_stores` (keyword-only arguments there;
    `analyses.geometry.curves.capture_series` takes examples before sites)."""
    from workbench.analysis.checkpoints import capture_stores

    return capture_stores(
        series,
        sites=sites,
        examples=examples,
        out=out,
        steps=steps,
        device=device,
        **capture_kwargs,
    )
