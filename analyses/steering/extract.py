"""Extract steering directions from contrasting inputs or labelled store rows.

- `mean_difference`: v = mean_i h(x+_i) - mean_j h(x-_j) (diff-in-means; CAA, Rimsky et al.
  2023, is this over paired prompts at one read position; "delta" vectors between two regimes
  of any model are this too).
- `pca_difference`: paired inputs; v = the first principal direction of the centred
  differences h(x+_i) - h(x-_i) (sign chosen so the mean difference projects positively),
  scaled to the mean difference's projection on it.
- `actadd`: ActAdd (Turner et al. 2023, arXiv:2308.10248): the per-position tensor
  h(p+) - h(p-) (T, d) at one site; the shorter prompt's activations are zero-padded.
- `from_store`: diff-in-means of a store's rows grouped by a row or example label.
- `from_array`: any direction (a probe's weight row, an SAE decoder row, a codebook code).
- `from_sae`, `from_codebook` (`analyses.steering.dictionaries`): an SAE latent's decoder row
  and a codebook code's vector, unit-normalised by default; `from_probe`: a saved probe
  direction (unit norm as `probes.directions` saves it).

Read positions (`read`, see `analyses.steering.reads`): "content-mean" (the default: the mean
over the tokens that are not punctuation, so a text ending in "." is not read at its full stop),
"last-content" (the last non-punctuation token), "last" real token, "mean" over real tokens,
"all" (every token is a sample), or an int over the unpadded sequence (CAA reads -2).
Plain modules have no positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analyses.steering.dictionaries import from_codebook as from_codebook
from analyses.steering.dictionaries import from_sae as from_sae
from analyses.steering.reads import CONTENT_READS, DEFAULT_READ, READS, positions_for
from analyses.steering.vectors import SteeringVector
from workbench.errors import InputError
from workbench.hooks.capture import capture
from workbench.models.handle import ModelHandle


def read_site(
    handle: ModelHandle,
    inputs: Any,
    site: str,
    read: str | int = DEFAULT_READ,
    batch_size: int = 64,
) -> torch.Tensor:
    """(n, d) float32 activations at `site`: one row per input (every read but "all", and plain
    modules) or per token ("all")."""
    if not isinstance(read, int) and read not in READS:
        raise InputError(f"read={read!r}; valid: {', '.join(READS)} or an int position")
    chunks = _chunks(inputs, batch_size)
    rows = []
    for chunk in chunks:
        if not handle.is_language_model:
            acts = capture(handle, site, chunk, positions=None)
            rows.append(acts[site].float().reshape(len(acts[site]), -1))
            continue
        positions: Any = "all" if read == "mean" else read
        if read in CONTENT_READS:
            chunk = handle.prepare(chunk)
            positions = positions_for(handle, chunk, str(read))
        acts = capture(handle, site, chunk, positions=positions)
        h = acts[site].float()
        if read in ("mean", "content-mean"):
            index = acts.example_index
            assert index is not None
            n = int(index.max()) + 1
            sums = torch.zeros(n, h.shape[1]).index_add_(0, index.cpu(), h.cpu())
            counts = torch.bincount(index.cpu(), minlength=n).clamp(min=1)
            h = sums / counts[:, None]
        rows.append(h.cpu())
    if not rows:
        raise InputError("no inputs given")
    return torch.cat(rows)


def _chunks(inputs: Any, size: int) -> list[Any]:
    if isinstance(inputs, str):
        return [[inputs]]
    if isinstance(inputs, torch.Tensor):
        return [inputs[i : i + size] for i in range(0, len(inputs), size)]
    inputs = list(inputs)
    return [inputs[i : i + size] for i in range(0, len(inputs), size)]


def _n(inputs: Any) -> int:
    return 1 if isinstance(inputs, str) else len(inputs)


def _provenance(handle: ModelHandle, read: str | int, **extra: Any) -> dict[str, Any]:
    return {**handle.provenance(), "read": read, **extra}


def mean_difference(
    handle: ModelHandle,
    positive: Any,
    negative: Any,
    site: str,
    read: str | int = DEFAULT_READ,
) -> SteeringVector:
    """Diff-in-means direction (d,) at `site` from two input sets (any sizes)."""
    a = read_site(handle, positive, site, read)
    b = read_site(handle, negative, site, read)
    return SteeringVector(
        a.mean(0) - b.mean(0),
        site,
        "mean-diff",
        _provenance(handle, read, n_positive=_n(positive), n_negative=_n(negative)),
    )


def pca_difference(
    handle: ModelHandle,
    positive: Any,
    negative: Any,
    site: str,
    read: str | int = DEFAULT_READ,
) -> SteeringVector:
    """First principal direction of paired differences (needs as many positives as negatives,
    in pairs; "all" reads are not paired)."""
    if _n(positive) != _n(negative):
        raise InputError(
            f"PCA of differences needs pairs: got {_n(positive)} positive and "
            f"{_n(negative)} negative inputs"
        )
    if read == "all":
        raise InputError(
            "PCA of differences pairs one row per input: use read='last', 'mean' or an int"
        )
    diffs = read_site(handle, positive, site, read) - read_site(handle, negative, site, read)
    if len(diffs) < 2:
        raise InputError("PCA of differences needs at least 2 pairs")
    mean = diffs.mean(0)
    _, _, vh = torch.linalg.svd(diffs - mean, full_matrices=False)
    direction = vh[0]
    along = float(mean @ direction)
    if along < 0:
        direction, along = -direction, -along
    return SteeringVector(
        direction * max(along, 1e-12),
        site,
        "pca",
        _provenance(handle, read, n_pairs=len(diffs)),
    )


def actadd(handle: ModelHandle, positive: str, negative: str, site: str) -> SteeringVector:
    """ActAdd per-position steering tensor (T, d) = h(p+) - h(p-), zero-padding the shorter."""
    if not handle.is_language_model:
        raise InputError("ActAdd works on token sequences; use mean_difference for plain modules")
    a = capture(handle, site, [positive], positions="all")[site].float().cpu()
    b = capture(handle, site, [negative], positions="all")[site].float().cpu()
    length = max(len(a), len(b))
    pad_a = torch.zeros(length, a.shape[1])
    pad_b = torch.zeros(length, b.shape[1])
    pad_a[: len(a)], pad_b[: len(b)] = a, b
    return SteeringVector(
        pad_a - pad_b,
        site,
        "actadd",
        _provenance(handle, "all", positive=positive, negative=negative),
    )


def from_store(
    store: Any,
    site: str,
    label: str,
    positive: float,
    negative: float,
    batch_size: int = 65536,
    label_level: str = "auto",
) -> SteeringVector:
    """Diff-in-means of the rows of `store` at `site` whose label `label` (at `label_level`:
    token, example, or auto = the only level the store holds it at) equals `positive` vs
    `negative` (rows streamed; memory does not grow with the store)."""
    from workbench.analysis.sources import Source

    source = Source.from_store(store, site, label=label)
    labels = source.label_array(label_level)
    sums: dict[float, Any] = {positive: None, negative: None}
    counts = {positive: 0, negative: 0}
    start = 0
    for rows in source.iter_rows(batch_size):
        part = labels[start : start + len(rows)]
        start += len(rows)
        for value in (positive, negative):
            mask = part == value
            if mask.any():
                total = rows[mask].astype(np.float64).sum(0)
                sums[value] = total if sums[value] is None else sums[value] + total
                counts[value] += int(mask.sum())
    for value in (positive, negative):
        if counts[value] == 0:
            present = ", ".join(str(v) for v in np.unique(labels)[:20])
            raise InputError(f"no row has {label}={value}; values present: {present}")
    diff = sums[positive] / counts[positive] - sums[negative] / counts[negative]
    return SteeringVector(
        torch.from_numpy(diff).float(),
        site,
        "store",
        {
            **store.provenance,
            "store": str(store.path),
            "label": label,
            "label_level": source.resolve_label_level(label_level),
            "positive": positive,
            "negative": negative,
            "n_positive": counts[positive],
            "n_negative": counts[negative],
        },
    )


def from_array(
    vector: np.ndarray | torch.Tensor | Sequence[float],
    site: str,
    method: str = "array",
    **provenance: Any,
) -> SteeringVector:
    """Wrap a given direction (a probe's weights, an SAE decoder row, a codebook code)."""
    return SteeringVector(
        torch.as_tensor(np.asarray(vector, dtype=np.float32)), site, method, provenance
    )


def typical_norm(handle: ModelHandle, inputs: Any, site: str) -> float:
    """Mean L2 norm of the site's activations over every real token of `inputs` (every row of a
    plain module): pass it as `scale` to `steer` so coefficients count in units of it."""
    return float(read_site(handle, inputs, site, "all").norm(dim=-1).mean())


def from_probe(path: str, site: str | None = None) -> SteeringVector:
    """A linear probe's class direction saved by `probes.directions.save_direction` (unit norm
    by default: pair it with `scale=` or a coefficient in activation units)."""
    from probes.directions import load_direction

    if not Path(path).is_file():
        raise InputError(f"no probe direction at {path!r}")
    direction, meta = load_direction(path)
    site = site or meta.get("site")
    if not site:
        raise InputError(f"the probe direction at {path!r} does not record its site: pass site=")
    return SteeringVector(
        torch.from_numpy(np.asarray(direction)), site, "probe", {"probe": path, **meta}
    )
