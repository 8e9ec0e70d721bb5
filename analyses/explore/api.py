"""Explore one site's activations: a 2-D map of sampled rows (PCA or UMAP), and what a selection
of those rows has in common (label make-up, the units that set them apart, their contexts).

The app's Explore page draws the map and lets a box or lasso selection drive the other panels;
the selection travels in the URL as compact row ranges (`encode_rows`).

Conventions:
- PCA is on mean-centred rows (no scaling); component signs are fixed so that each component's
  largest-|loading| unit is positive (as scikit-learn's `svd_flip` does for V), so a map does not
  flip between runs.
- A unit's effect size is Cohen's d: (mean of the selection - mean of the rest) / pooled standard
  deviation (ddof=1 within each group), 0 where both groups are constant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from workbench.data.tokens import context_span
from workbench.errors import InputError

METHODS = ("pca", "umap")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def sample_rows(n_rows: int, max_points: int, seed: int = 0) -> np.ndarray:
    """(min(n_rows, max_points),) sorted row ids, a uniform sample without replacement."""
    if max_points < 1:
        raise InputError(f"max_points={max_points}: need at least 1 point")
    if n_rows <= max_points:
        return np.arange(n_rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=max_points, replace=False)).astype(np.int64)


def project(acts: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, dict]:
    """(n, 2) float64 map of `acts` (n, d), and what it is: {"method", "explained": fraction of
    variance per PCA axis (None for UMAP), "axes": axis titles}.

    UMAP (McInnes et al. 2018) uses umap-learn with 15 neighbours and `seed` (deterministic for a
    given seed, at the cost of its parallelism)."""
    if method not in METHODS:
        raise InputError(f"method={method!r}; valid: {', '.join(METHODS)}")
    x = np.asarray(acts, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise InputError(f"need (n >= 3, d) activations for a map, got shape {x.shape}")
    if method == "umap":
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), random_state=seed)
        coords = np.asarray(reducer.fit_transform(x), dtype=np.float64)
        return coords, {"method": "umap", "explained": None, "axes": ["UMAP 1", "UMAP 2"]}
    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    signs[signs == 0] = 1.0
    coords = np.zeros((len(x), 2))
    coords[:, :k] = u[:, :k] * s[:k] * signs
    total = float((s**2).sum())
    explained = [float(v) / total if total > 0 else 0.0 for v in (s[:k] ** 2)] + [0.0] * (2 - k)
    axes = [f"PC{i + 1} ({100 * e:.1f}% var)" for i, e in enumerate(explained)]
    return coords, {"method": "pca", "explained": explained, "axes": axes}


def unit_effects(acts: np.ndarray, selected: np.ndarray, top: int = 10) -> pd.DataFrame:
    """The `top` units that best tell selected rows from the rest, by |Cohen's d|.

    acts (n, d); selected (n,) bool with at least one True and one False. Columns: unit,
    mean_selected, mean_rest, effect (d), sorted by |effect| descending."""
    x = np.asarray(acts, dtype=np.float64)
    mask = np.asarray(selected, dtype=bool)
    if mask.shape != (len(x),):
        raise InputError(f"selection of shape {mask.shape} for {len(x)} rows")
    n_in, n_out = int(mask.sum()), int((~mask).sum())
    if n_in == 0 or n_out == 0:
        raise InputError(f"need selected and unselected rows, got {n_in} selected of {len(x)}")
    a, b = x[mask], x[~mask]
    var_a = a.var(axis=0, ddof=1) if n_in > 1 else np.zeros(x.shape[1])
    var_b = b.var(axis=0, ddof=1) if n_out > 1 else np.zeros(x.shape[1])
    dof = max(n_in + n_out - 2, 1)
    pooled = np.sqrt(((n_in - 1) * var_a + (n_out - 1) * var_b) / dof)
    diff = a.mean(axis=0) - b.mean(axis=0)
    effect = np.divide(diff, pooled, out=np.zeros_like(diff), where=pooled > 0)
    order = np.argsort(-np.abs(effect), kind="stable")[:top]
    return pd.DataFrame(
        {
            "unit": order,
            "mean_selected": a.mean(axis=0)[order],
            "mean_rest": b.mean(axis=0)[order],
            "effect": effect[order],
        }
    )


def label_makeup(labels: np.ndarray, selected: np.ndarray) -> pd.DataFrame:
    """Share of each label value among the selected rows and among all rows.

    Columns: value, n_selected, share_selected, share_all; sorted by share_selected - share_all
    (the values the selection is richest in first)."""
    values = np.asarray(labels)
    mask = np.asarray(selected, dtype=bool)
    frame = pd.DataFrame({"value": values.astype(str), "selected": mask})
    counts = frame.groupby("value")["selected"].agg(["sum", "size"])
    out = pd.DataFrame(
        {
            "value": counts.index,
            "n_selected": counts["sum"].to_numpy(dtype=np.int64),
            "share_selected": counts["sum"].to_numpy() / max(int(mask.sum()), 1),
            "share_all": counts["size"].to_numpy() / len(values),
        }
    )
    lift = out["share_selected"] - out["share_all"]
    return out.iloc[np.argsort(-lift.to_numpy(), kind="stable")].reset_index(drop=True)


def row_labels(store: Any) -> dict[str, np.ndarray]:
    """Every per-row label of a store: its row labels, its example labels spread over their
    rows (name `example:<label>` when a row label has the same name), and `position`."""
    out = dict(store.row_labels())
    example_index = store.example_index()
    for name, values in store.example_labels().items():
        out[name if name not in out else f"example:{name}"] = np.asarray(values)[example_index]
    out["position"] = store.positions()
    return out


def contexts(
    store: Any,
    rows: np.ndarray,
    decode: Callable[[int], str] | None,
    window: int = 8,
) -> pd.DataFrame:
    """One line per row: row, example, position, token and its context (up to `window` tokens of
    the same example before it, the token itself in [brackets], one token after). Rows without a
    token (id -1: images, other array inputs) get empty token and context."""
    given = decode or (lambda i: f"<{int(i)}>")

    def text(token_id: int) -> str:
        return given(token_id) if token_id >= 0 else ""

    example_index, token_ids, positions = (
        store.example_index(),
        store.token_ids(),
        store.positions(),
    )
    records = []
    for row in np.asarray(rows, dtype=np.int64):
        example = example_index[row]
        lo, hi = context_span(example_index, int(row), before=window, after=1)
        tokens = [text(int(t)) for t in token_ids[lo:hi]]
        tokens[row - lo] = f"[{tokens[row - lo]}]"
        records.append(
            {
                "row": int(row),
                "example": int(example),
                "position": int(positions[row]),
                "token": text(int(token_ids[row])),
                "context": " ".join(t.strip() or "·" for t in tokens)
                if token_ids[row] >= 0
                else "",
            }
        )
    return pd.DataFrame.from_records(
        records, columns=["row", "example", "position", "token", "context"]
    )


def encode_rows(rows: np.ndarray) -> str:
    """Row ids as compact ranges: [0, 1, 2, 7, 9, 10] -> "0-2,7,9-10" (sorted, unique)."""
    ids = np.unique(np.asarray(rows, dtype=np.int64))
    if len(ids) == 0:
        return ""
    breaks = np.flatnonzero(np.diff(ids) != 1)
    starts = np.concatenate([[ids[0]], ids[breaks + 1]])
    ends = np.concatenate([ids[breaks], [ids[-1]]])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts, ends, strict=True))


def decode_rows(text: str, n_rows: int) -> np.ndarray:
    """The inverse of `encode_rows`, checked against `n_rows`: sorted unique row ids."""
    if not text.strip():
        return np.zeros(0, dtype=np.int64)
    parts = []
    for piece in text.split(","):
        match = _RANGE.match(piece.strip())
        if match is None:
            raise InputError(f"selection {piece!r}: expected ROW or FIRST-LAST (e.g. 0-2,7)")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first or last >= n_rows:
            raise InputError(f"selection {piece!r}: rows run from 0 to {n_rows - 1}")
        parts.append(np.arange(first, last + 1, dtype=np.int64))
    return np.unique(np.concatenate(parts))


def selection_panels(
    acts: np.ndarray,
    rows: np.ndarray,
    selected_rows: np.ndarray,
    labels: Mapping[str, np.ndarray],
    colour: str | None,
) -> dict[str, Any]:
    """What the Explore page shows for a selection among the mapped rows.

    acts (n, d) are the activations of `rows` (n,) (store row ids); `selected_rows` are store row
    ids (those not among `rows` are ignored). Returns {"mask": (n,) bool, "units": unit_effects
    or None when all or none are selected, "makeup": label_makeup of `labels[colour]` or None}."""
    mask = np.isin(rows, selected_rows)
    units = unit_effects(acts, mask) if 0 < mask.sum() < len(mask) else None
    makeup = None
    if colour is not None and mask.any():
        makeup = label_makeup(np.asarray(labels[colour])[rows], mask)
    return {"mask": mask, "units": units, "makeup": makeup}
