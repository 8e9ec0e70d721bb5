"""Geometry curves over layers and checkpoints: many stores in, one tidy frame out.

`store_curves(stores)` runs the chosen geometry analyses (intrinsic dimension, anisotropy,
effective rank, sparsity) on every site of every store and returns one frame with columns
`checkpoint_step, store, site, layer, analysis, metric, value` (layer: the block number in the
site name, or the site's position in the store for plain modules). `series_curves(series, ...)`
first captures a checkpoint series into one store per checkpoint (`capture_series`, resumable:
finished stores are reused), then does the same. `curves_result(frame)` wraps a frame as a
`Result` (analysis "geometry-curves") that the app's Geometry page lists.

Sparsity counts "active" units, which means something only after a nonlinearity: by default it
runs only on sites that look like one (`is_activation_site`: `mlp.hook_post`, `act<N>`, names
with relu/gelu); pass `sparsity_sites="all"` to run it everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analyses.geometry.knn_cache import NEIGHBOURS
from workbench.analysis.results import Result
from workbench.errors import InputError

# analysis name -> the metrics of its result kept in the curves
CURVE_METRICS: dict[str, tuple[str, ...]] = {
    "twonn": ("dimension",),
    "mle": ("dimension",),
    "pca-dim": ("participation_ratio", "n_components_90"),
    "anisotropy": ("anisotropy",),
    "effective-rank": ("effective_rank",),
    "sparsity": ("fraction_active", "dead_fraction", "always_on_fraction"),
}
ACTIVATION_SITE = re.compile(r"(mlp\.hook_post$|(^|\.)act\d*$|relu|gelu)", re.IGNORECASE)


def is_activation_site(site: str) -> bool:
    """True for a site that holds a nonlinearity's output (where sparsity is meaningful)."""
    return bool(ACTIVATION_SITE.search(site))


def _registered() -> dict[str, Any]:
    from analyses.geometry import analyses as geometry
    from analyses.geometry import intrinsic_dim

    return {a.name: a for a in [*intrinsic_dim.ANALYSES, *geometry.ANALYSES]}


def _open(store: Any) -> Any:
    from workbench.store import ActivationStore

    return store if isinstance(store, ActivationStore) else ActivationStore(store)


def store_curves(
    stores: Iterable[Any],
    analyses: Sequence[str] = tuple(CURVE_METRICS),
    sites: Sequence[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    sparsity_sites: str = "activations",
) -> pd.DataFrame:
    """Curves frame of `analyses` on `sites` (default: every site) of each store (an
    `ActivationStore` or its path). `params` maps an analysis name to setting overrides,
    e.g. {"twonn": {"max_samples": 2000}}."""

    registry = _registered()
    unknown = [a for a in analyses if a not in registry]
    if unknown:
        raise InputError(f"unknown curve analyses {unknown}; valid: {', '.join(registry)}")
    if sparsity_sites not in ("activations", "all"):
        raise InputError(f"sparsity_sites={sparsity_sites!r}; valid: activations, all")
    settings = {a: registry[a].params(**(params or {}).get(a, {})) for a in analyses}
    with NEIGHBOURS.plan(_neighbours_needed(settings)):
        return _curves(stores, analyses, sites, settings, registry, sparsity_sites)


def _neighbours_needed(settings: dict[str, Any]) -> int:
    """The k-NN width to search at once: MLE's `n_neighbors` when TwoNN and MLE both run on
    the same subsample (same `max_samples`, `seed`, `duplicates`), so that one search per site
    serves both (`analyses.geometry.knn_cache`); else 0 (each searches what it needs)."""
    twonn, mle = settings.get("twonn"), settings.get("mle")
    if twonn is None or mle is None:
        return 0
    same = ("max_samples", "seed", "duplicates")
    if any(getattr(twonn, f) != getattr(mle, f) for f in same):
        return 0
    return int(mle.n_neighbors)


def _curves(
    stores: Iterable[Any],
    analyses: Sequence[str],
    sites: Sequence[str] | None,
    settings: dict[str, Any],
    registry: dict[str, Any],
    sparsity_sites: str,
) -> pd.DataFrame:
    from workbench.analysis.sources import Source
    from workbench.sites.names import layer_index

    rows = []
    for store in map(_open, stores):
        chosen = list(sites) if sites is not None else store.sites
        step = store.spec.get("checkpoint_step")
        for position, site in enumerate(chosen):
            layer = layer_index(site)
            for name in analyses:
                skip = sparsity_sites == "activations" and not is_activation_site(site)
                if name == "sparsity" and skip:
                    continue
                result = registry[name].run(Source.from_store(store, site), settings[name])
                for metric in CURVE_METRICS[name]:
                    rows.append(
                        {
                            "checkpoint_step": step,
                            "store": store.path.name,
                            "site": site,
                            "layer": position if layer is None else layer,
                            "analysis": name,
                            "metric": metric,
                            "value": float(result.headline[metric]),
                        }
                    )
    columns = ["checkpoint_step", "store", "site", "layer", "analysis", "metric", "value"]
    return pd.DataFrame(rows, columns=columns)


def capture_series(
    series: Any,
    examples: Sequence[Any],
    sites: str | Sequence[str],
    out: str | Path,
    steps: Sequence[int | str] | None = None,
    *,
    dataset: str = "custom",
    device: str = "cpu",
    **capture_kwargs: Any,
) -> list[Any]:
    """Capture `examples` at `sites` for each checkpoint `steps` (default: all; ascending) of a
    `CheckpointSeries` (or zoo name, or series folder) into `out/step<N>`; returns the stores
    in step order (complete ones are reused). The same as
    `workbench.analysis.checkpoints.capture_stores`, whose keyword-only arguments avoid this
    order (examples before sites) and `analyses.similarity.maps.capture_checkpoints`'s."""
    from workbench.analysis.checkpoints import capture_stores

    stores = capture_stores(
        series,
        sites=sites,
        examples=examples,
        out=out,
        steps=steps,
        device=device,
        dataset=dataset,
        **capture_kwargs,
    )
    return list(stores.values())


def series_curves(
    series: Any,
    examples: Sequence[Any],
    sites: str | Sequence[str],
    out: str | Path,
    steps: Sequence[int] | None = None,
    *,
    analyses: Sequence[str] = tuple(CURVE_METRICS),
    params: dict[str, dict[str, Any]] | None = None,
    dataset: str = "custom",
    **capture_kwargs: Any,
) -> pd.DataFrame:
    """Capture each checkpoint of `series` (see `capture_series`) and return the curves frame
    over checkpoints and layers (see `store_curves`)."""
    stores = capture_series(series, examples, sites, out, steps, dataset=dataset, **capture_kwargs)
    return store_curves(stores, analyses, params=params)


def curves_result(frame: pd.DataFrame, provenance: dict[str, Any] | None = None) -> Result:
    """A curves frame as a `Result` ("geometry-curves"; save it under the runs dir with
    `.save(dir)` and the app's Geometry page shows it over checkpoints)."""
    steps = sorted({int(s) for s in frame["checkpoint_step"].dropna()})
    headline = {"checkpoint_steps": steps, "sites": sorted(set(frame["site"]))}
    return Result("geometry-curves", frame, headline, {}, provenance or {})
