"""Probe directions as steering vectors: fit a probe, take the direction that raises one class's
logit against the others, save it with its site and label.

For multinomial logistic regression the logits are W h + b with W (K, d); adding a common
vector to every row of W changes nothing, so the direction of class k is w_k - mean_j w_j (the
part of w_k that separates k from the rest). For a binary probe (one row w for class 1) it is
+w for class 1 and -w for class 0; for ridge it is the single weight row. Directions are in raw
activation units (the probe standardises inside and maps back), unit-normalised by default.

Files: `.safetensors` (tensor "direction" (d,), float32, metadata: site, label, target,
n_classes, accuracy and anything passed) or `.npy` with a `.json` sidecar of the same metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from probes.linear import LinearProbe, infer_task
from workbench.errors import InputError


def direction_of(probe: LinearProbe, target: Any = None, normalize: bool = True) -> np.ndarray:
    """(d,) direction of a fitted probe for class `target` (ignored for regression)."""
    coef = probe.coef_
    if probe.task == "regression":
        vector = coef[0]
    else:
        classes = list(probe.classes_ if probe.classes_ is not None else [])
        if target not in classes:
            raise InputError(f"target class {target!r} is not a probe class; valid: {classes}")
        k = classes.index(target)
        if len(coef) == 1:  # binary: one row, for classes_[1]
            vector = coef[0] if k == 1 else -coef[0]
        else:
            vector = coef[k] - coef.mean(axis=0)
    norm = float(np.linalg.norm(vector))
    if normalize:
        if norm == 0:
            raise InputError("the probe direction is zero: the label is not linearly decodable")
        vector = vector / norm
    return np.asarray(vector, dtype=np.float64)


def probe_direction(
    features: np.ndarray,
    labels: np.ndarray,
    target: Any = None,
    groups: np.ndarray | None = None,
    normalize: bool = True,
    grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0),
) -> np.ndarray:
    """Fit a probe on `features` (n, d) and `labels` (n,) (grouped CV over `grid`; rows with a
    negative class label are dropped) and return the (d,) direction of class `target`."""
    labels = np.asarray(labels)
    task = infer_task(labels)
    keep = labels >= 0 if task == "classification" else np.isfinite(labels)
    probe = LinearProbe(task, grid).fit(
        np.asarray(features)[keep], labels[keep], None if groups is None else groups[keep]
    )
    return direction_of(probe, target, normalize)


def save_direction(
    path: str | Path,
    direction: np.ndarray,
    site: str,
    label: str,
    target: Any = None,
    **metadata: Any,
) -> Path:
    """Write `direction` (d,) with its site, label and target class (and `metadata`) to a
    `.safetensors` file or a `.npy` + `.json` sidecar; returns the path written."""
    path = Path(path)
    meta = {"site": site, "label": label, "target": target, **metadata}
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    vector = np.ascontiguousarray(np.asarray(direction, dtype=np.float32).reshape(-1))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({"direction": vector}, str(path), metadata=text)
    elif path.suffix == ".npy":
        np.save(path, vector)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str))
    else:
        raise InputError(f"direction file {str(path)!r}: valid suffixes .safetensors, .npy")
    return path


def load_direction(path: str | Path) -> tuple[np.ndarray, dict[str, str]]:
    """(direction (d,), metadata as strings) from a file `save_direction` wrote."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            return fh.get_tensor("direction"), dict(fh.metadata() or {})
    meta = json.loads(path.with_suffix(".json").read_text())
    return np.load(path, allow_pickle=False), {k: str(v) for k, v in meta.items()}
