"""Neural collapse metrics NC1-NC4 (Papyan, Han & Donoho, PNAS 2020), streamed over batches.

Features h (n, d) with class labels y in 0..C-1 (negative labels = "no label", skipped), and
optionally the last layer's classifier W (C, d) with bias b (C,). Definitions and conventions
(../shared/METHODS.md section 5; where references differ the choice is named):

- mu_c = mean of class c's features; mu_G = **mean of the class means** (Papyan's reference
  code; equals the data mean for balanced classes and keeps the columns of M summing to 0);
- M = [mu_c - mu_G] (d, C); Sigma_B = M M^T / C; Sigma_W = (1/N) sum_c sum_i (h_i - mu_c)
  (h_i - mu_c)^T, **divided by N** (all labelled rows; ddof 0);
- `nc1` = Tr(Sigma_W Sigma_B^+) / C (**with /C**, as in the paper's Fig. 6; the reference
  Colab's `Sw_invSb` omits it). The pseudo-inverse is taken in the span of M: with the thin SVD
  M = U S V^T (singular values above max(d, C) * eps * s_max), Sigma_B^+ = C U S^-2 U^T, so
  nc1 = sum_k u_k^T Sigma_W u_k / s_k^2, O(d C^2) instead of a d x d pinv;
- `nc2_equinorm` = Std_c ||mu_c - mu_G|| / Avg_c ||mu_c - mu_G|| (coefficient of variation,
  **ddof 1** as torch.std in the reference code); `nc2_equinorm_weights`: the same for ||w_c||;
- `nc2_equiangular` = Std over the C(C-1) ordered pairs c != c' of cos(mu_c - mu_G,
  mu_c' - mu_G) (ddof 1); `nc2_max_angle` = Avg_{c != c'} |cos + 1/(C-1)| (the distance from
  the simplex angle); `*_weights`: the same for the rows of W;
- `nc3` = || W^T/||W||_F - M/||M||_F ||_F^2 (self-duality);
- `nc4` = fraction of labelled rows where argmax_c (W h + b)_c != argmin_c ||h - mu_c|| (the
  network disagrees with the nearest class mean); `ncc_accuracy` and `net_accuracy` beside it.

Every metric is 0 for features at the vertices of a simplex ETF with a self-dual classifier.
Closed form for isotropic noise: with h = mu_c + e, e ~ N(0, s^2 I_d), and a unit-norm ETF
(||mu_c - mu_G|| = 1, cos = -1/(C-1)), the Gram M^T M = C/(C-1) (I - 11^T/C) has eigenvalue
C/(C-1) (C-1 times), so Sigma_B = P/(C-1) with P the projector on span(M), Sigma_B^+ = (C-1) P,
and Tr(s^2 I (C-1) P) / C = s^2 (C-1)^2 / C (0.081 for C = 10, s = 0.1).

Streaming: one pass accumulates per-class counts and means and the pooled within-class scatter
(d, d); each batch's scatter is taken around the batch's own class means and merged with
Chan et al.'s update (n_a n_b / (n_a + n_b)) delta delta^T per class, so memory is
O(C d + d^2), independent of N, and no large-offset cancellation occurs. NC4 needs the class
means first, so it streams a second pass (nearest class mean vectorised as
argmin ||mu||^2 - 2 h mu^T; no per-row loop).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analyses.neural_collapse.sites import PENULTIMATE
from workbench.analysis.registry import Analysis
from workbench.analysis.results import Result
from workbench.analysis.sources import LABEL_LEVELS, Source
from workbench.errors import InputError

HEADLINE = (
    "nc1",
    "nc2_equinorm",
    "nc2_equiangular",
    "nc2_max_angle",
    "nc2_equinorm_weights",
    "nc2_equiangular_weights",
    "nc2_max_angle_weights",
    "nc3",
    "nc4",
    "ncc_accuracy",
    "net_accuracy",
)


@dataclass(frozen=True)
class Params:
    """n_classes: C (0: the classifier's row count, else max label + 1; every class in 0..C-1
    must have rows); batch_size: rows per streamed batch; label_level: which level of a store
    label is the class, token | example | auto (the default: the only level the store holds
    the name at; a name held at both is an error naming both); the result's params record the
    level that ran ("given" for a labels array)."""

    n_classes: int = 0
    batch_size: int = 16384
    label_level: str = "auto"

    def __post_init__(self) -> None:
        if self.label_level not in ("auto", *LABEL_LEVELS):
            raise InputError(
                f"setting label_level={self.label_level!r}; valid: auto, {', '.join(LABEL_LEVELS)}"
            )


class ClassScatter:
    """Streaming per-class counts, means and pooled within-class scatter.

    `update(h (B, d), y (B,) ints in 0..C-1)` any number of times; `counts_` (C,), `means_`
    (C, d) and `scatter_` (d, d) = sum_c sum_i (h_i - mu_c)(h_i - mu_c)^T, all float64.

    `device` (a torch device name, e.g. "cuda"): the batch's O(B d^2) scatter product runs
    there in float64 torch (the only term that grows with the rows); None: numpy's BLAS on the
    CPU. Both give the same sums up to float64 rounding.
    """

    def __init__(self, n_classes: int, dim: int, device: str | None = None) -> None:
        self.n_classes = n_classes
        self.dim = dim
        self.device = device
        self.counts_ = np.zeros(n_classes, dtype=np.int64)
        self.means_ = np.zeros((n_classes, dim))
        self._upper = np.zeros((dim, dim), order="F")  # upper triangle of the scatter
        self._full: Any = None  # torch (d, d) float64 on `device`: the batches' scatter sums
        if device is not None:
            import torch

            self._full = torch.zeros((dim, dim), dtype=torch.float64, device=device)

    @property
    def scatter_(self) -> np.ndarray:
        """(d, d) pooled within-class scatter sum_c sum_i (h_i - mu_c)(h_i - mu_c)^T."""
        upper = np.triu(self._upper)
        full = upper + np.triu(upper, 1).T
        if self._full is not None:
            batches = self._full.cpu().numpy()
            full = full + (batches + batches.T) / 2  # symmetric up to rounding: make it exact
        return full

    def update(self, h: np.ndarray, y: np.ndarray) -> ClassScatter:
        from scipy.linalg.blas import dsyrk

        h = np.asarray(h)
        counts = np.bincount(y, minlength=self.n_classes)
        onehot = np.zeros((len(y), self.n_classes))
        onehot[np.arange(len(y)), y] = 1.0
        means = (onehot.T @ h.astype(np.float64, copy=False)) / np.maximum(counts, 1)[:, None]
        if self._full is not None:
            import torch

            rows = torch.from_numpy(np.ascontiguousarray(h)).to(self._full.device)
            index = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(self._full.device)
            centred_t = rows.double() - torch.from_numpy(means).to(self._full.device)[index]
            self._full.addmm_(centred_t.T, centred_t)
        else:
            centred = h - means[y]  # float64 (means are), whatever the features' dtype
            # the symmetric rank-B update (upper triangle only): half the flops of
            # centred.T @ centred
            dsyrk(1.0, centred.T, beta=1.0, c=self._upper, trans=0, lower=0, overwrite_c=1)
        # Chan et al.: merging (n_a, mu_a) with (n_b, mu_b) adds n_a n_b / n delta delta^T.
        total = self.counts_ + counts
        delta = means - self.means_
        weight = np.divide(
            self.counts_ * counts, total, out=np.zeros(self.n_classes), where=total > 0
        )
        self._upper += (delta * weight[:, None]).T @ delta
        frac = np.divide(counts, total, out=np.zeros(self.n_classes), where=total > 0)
        self.means_ += delta * frac[:, None]
        self.counts_ = total
        return self


def _cv(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / np.mean(values))


def _angles(vectors: np.ndarray) -> tuple[float, float]:
    """(Std, Avg |cos + 1/(C-1)|) over ordered pairs c != c' of the rows' cosines."""
    c = len(vectors)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cos = (unit @ unit.T)[~np.eye(c, dtype=bool)]
    return float(np.std(cos, ddof=1)), float(np.mean(np.abs(cos + 1.0 / (c - 1))))


def nc1(scatter_w: np.ndarray, centred_means: np.ndarray, scale: float = 0.0) -> float:
    """Tr(Sigma_W Sigma_B^+)/C from Sigma_W (d, d) and M^T = centred means (C, d); see module
    docstring (pseudo-inverse in the span of M).

    Singular values of M at or below max(d, C) * eps * max(s_max, `scale`) count as zero;
    `scale` = ||uncentred means||_F, because centring rounds at eps times the means' size (a
    large common offset would otherwise turn rounding noise into a huge Sigma_B^+ direction).
    """
    c, d = centred_means.shape
    u, s, _ = np.linalg.svd(centred_means.T, full_matrices=False)
    top = max(s[0] if len(s) else 0.0, scale)
    keep = s > max(d, c) * np.finfo(np.float64).eps * top
    if not keep.any():
        return float("inf")  # all class means coincide: no between-class spread
    u, s = u[:, keep], s[keep]
    return float(np.einsum("dk,de,ek->k", u, scatter_w, u) @ (1.0 / s**2))


def metrics_from_scatter(acc: ClassScatter, weights: np.ndarray | None = None) -> dict[str, float]:
    """NC1 and NC2 (and NC3 and the weights' NC2 when `weights` (C, d) is given) from a
    finished `ClassScatter`."""
    n = int(acc.counts_.sum())
    mu_g = acc.means_.mean(axis=0)
    centred = acc.means_ - mu_g
    out = {
        "nc1": nc1(acc.scatter_ / n, centred, float(np.linalg.norm(acc.means_))),
        "nc2_equinorm": _cv(np.linalg.norm(centred, axis=1)),
    }
    out["nc2_equiangular"], out["nc2_max_angle"] = _angles(centred)
    if weights is not None:
        out["nc2_equinorm_weights"] = _cv(np.linalg.norm(weights, axis=1))
        out["nc2_equiangular_weights"], out["nc2_max_angle_weights"] = _angles(weights)
        w = weights / np.linalg.norm(weights)
        m = centred / np.linalg.norm(centred)
        out["nc3"] = float(np.sum((w - m) ** 2))
    return out


def nearest_class_mean(h: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(B,) index of the nearest row of `means` (C, d) to each row of `h` (B, d), Euclidean,
    via argmin ||mu||^2 - 2 h mu^T (one matmul)."""
    return np.argmin((means**2).sum(axis=1) - 2.0 * (h @ means.T), axis=1)


def _split_classifier(weights: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """W (C, d) and b (C,) from `weights` of shape (C, d) or (C, d + 1) = [W | b]."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] not in (dim, dim + 1) or len(weights) < 2:
        raise InputError(
            f"classifier weights have shape {weights.shape}; valid: (classes, {dim}) or "
            f"(classes, {dim + 1}) = [W | bias] for features of width {dim}, classes >= 2"
        )
    if weights.shape[1] == dim:
        return weights, np.zeros(len(weights))
    return weights[:, :dim], weights[:, dim]


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"labels have shape {labels.shape}; valid: (n_rows,), one class per row")
    if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iub":
        raise InputError(f"neural collapse needs integer class labels, got dtype {labels.dtype}")
    return labels.astype(np.int64)


def _n_classes(labels: np.ndarray, declared: int, weights_rows: int | None) -> int:
    top = int(labels.max()) + 1 if (labels >= 0).any() else 0
    n = declared or weights_rows or top
    if weights_rows is not None and n != weights_rows:
        raise InputError(f"n_classes={declared} but the classifier has {weights_rows} rows")
    if top > n:
        raise InputError(f"label {top - 1} is out of range; valid: 0..{n - 1} ({n} classes)")
    return n


def collapse(
    batches: Iterable[np.ndarray],
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    n_classes: int = 0,
    second_pass: Iterable[np.ndarray] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """NC metrics of features given as consecutive row batches (each (B, d)) with `labels`
    (n,) ints (negative = skipped).

    `weights` (C, d) or (C, d + 1) = [W | b], `bias` (C,) optional. NC4 re-reads the rows from
    `second_pass` (an iterable of the same batches; default: `batches` again, so pass a list or
    a re-iterable). `device`: where the within-class scatter accumulates (`ClassScatter`; a
    GPU for wide features). Raises InputError for a class with no rows, fewer than 2 classes, labels not
    matching rows, or a classifier of the wrong shape. Returns the module docstring's metrics
    plus `n_rows`, `n_classes`, `class_counts`.
    """
    labels = _check_labels(labels)
    if weights is not None and second_pass is None and iter(batches) is batches:
        raise InputError(
            "NC4 reads the rows twice: pass the batches as a list or re-iterable, or give "
            "second_pass= (a fresh iterable of the same batches)"
        )
    acc: ClassScatter | None = None
    w = b = None
    start = 0
    for batch in batches:
        batch = np.asarray(batch)
        if acc is None:
            dim = batch.shape[1]
            if weights is not None:
                w, b0 = _split_classifier(weights, dim)
                b = b0 if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
                if b.shape != (len(w),):
                    raise InputError(f"bias has shape {b.shape}; valid: ({len(w)},)")
            n = _n_classes(labels, n_classes, None if w is None else len(w))
            acc = ClassScatter(n, dim, device=device)
        y = labels[start : start + len(batch)]
        if len(y) != len(batch):
            raise InputError(
                f"labels have {len(labels)} rows, features at least {start + len(batch)}; "
                "valid: one label per feature row"
            )
        keep = y >= 0
        acc.update(batch[keep], y[keep])
        start += len(batch)
    if acc is None:
        raise InputError("no feature rows given")
    if start != len(labels):
        raise InputError(f"labels have {len(labels)} rows, features {start}; they must match")
    empty = np.flatnonzero(acc.counts_ == 0)
    if acc.n_classes < 2:
        raise InputError(f"neural collapse needs >= 2 classes, got {acc.n_classes}")
    if len(empty):
        raise InputError(
            f"class(es) {empty.tolist()} have no rows; every class in 0..{acc.n_classes - 1} "
            "needs samples (pass n_classes or a classifier with only the classes present)"
        )
    out: dict[str, Any] = metrics_from_scatter(acc, w)
    if w is not None and b is not None:
        disagree = net_right = ncc_right = 0
        start = 0
        for batch in second_pass if second_pass is not None else batches:
            y = labels[start : start + len(batch)]
            start += len(batch)
            h = np.asarray(batch, dtype=np.float64)[y >= 0]
            y = y[y >= 0]
            net = np.argmax(h @ w.T + b, axis=1)
            ncc = nearest_class_mean(h, acc.means_)
            disagree += int((net != ncc).sum())
            net_right += int((net == y).sum())
            ncc_right += int((ncc == y).sum())
        if start != len(labels):
            raise InputError(f"the second pass gave {start} rows, the first {len(labels)}")
        n = int(acc.counts_.sum())
        out.update(nc4=disagree / n, net_accuracy=net_right / n, ncc_accuracy=ncc_right / n)
    out.update(
        n_rows=int(acc.counts_.sum()),
        n_classes=acc.n_classes,
        class_counts=acc.counts_.tolist(),
    )
    return out


class _Rows:
    """Re-iterable view of a source's rows in batches (a second pass re-reads the store)."""

    def __init__(self, source: Source, batch_size: int) -> None:
        self.source, self.batch_size = source, batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.source.iter_rows(self.batch_size)


def run(source: Source, params: Params) -> Result:
    """NC metrics of one site (store, streamed) or one array (n, d) with its labels; NC3, NC4
    and the weights' NC2 only when `source.weights` (C, d) or (C, d + 1) = [W | b] is given."""
    labels = source.label_array(params.label_level)
    metrics = collapse(
        _Rows(source, params.batch_size), labels, source.weights, n_classes=params.n_classes
    )
    result = _result(metrics, source.site or "arrays", params, source.provenance)
    result.params["label_level"] = source.resolve_label_level(params.label_level)  # as it ran
    return result


def _result(
    metrics: dict[str, Any], site: str, params: Params, provenance: dict[str, Any]
) -> Result:
    step = (provenance.get("spec") or {}).get("checkpoint_step")
    rows = [
        {"site": site, "checkpoint_step": step, "metric": key, "value": metrics[key]}
        for key in HEADLINE
        if key in metrics
    ]
    headline = {k: v for k, v in metrics.items() if k in HEADLINE or k.startswith("n_")}
    return Result(
        analysis="neural-collapse",
        frame=pd.DataFrame(rows),
        headline=headline,
        params=asdict(params),
        provenance=provenance,
    )


def last_linear(module: Any) -> Any:
    """The last `nn.Linear` registered in `module` (the classifier of a plain classifier)."""
    from torch import nn

    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InputError(f"{type(module).__name__} has no nn.Linear layer to use as classifier")
    return linears[-1]


def over_checkpoints(
    name: str = "digits-mlp",
    split: str = "train",
    sites: tuple[str, ...] | None = None,
    steps: list[int | str] | None = None,
    zoo_root: str | Path | None = None,
    classes: tuple[int, ...] | None = None,
) -> Result:
    """NC metrics of a zoo classifier (digits-mlp, digits-cnn) at every epoch checkpoint.

    For each checkpoint the digits images of `split` ("train", the default: Papyan et al.
    measure on the training set, where the terminal phase has zero error; "test" = held out;
    "all") are run through the model in eval mode (batch norm uses its running statistics);
    features at each of `sites` (default `PENULTIMATE[name]`, shallow to deep: progressive
    collapse through depth) are read with `capture`, and the last site is paired with the last
    Linear layer (W, b) for NC3/NC4; `steps`: epochs, "first", "last" (None: all). `classes` keeps only those digits
    (NC1/NC2 on a subset, e.g. classes a model never trained on; NC3/NC4 are then omitted).
    Returns a Result whose frame has columns model, split, checkpoint_step, site, metric,
    value.
    """
    import torch
    from threadpoolctl import threadpool_limits

    from workbench import zoo
    from workbench.analysis.checkpoints import iter_checkpoints
    from workbench.data import digits
    from workbench.hooks.capture import capture
    from workbench.zoo.digits import DATA_SEED

    if name not in PENULTIMATE:
        raise InputError(f"no checkpoint sweep for {name!r}; valid: {', '.join(PENULTIMATE)}")
    valid_splits = {"train": 0, "test": 1, "all": None}
    if split not in valid_splits:
        raise InputError(f"split {split!r}; valid: {', '.join(valid_splits)}")
    sites = sites or PENULTIMATE[name]
    series = zoo.load_series(name, zoo_root)
    examples = digits.generate(None, DATA_SEED)
    if valid_splits[split] is not None:
        examples = [e for e in examples if e.labels["split"] == valid_splits[split]]
    x, y = digits.as_arrays(examples, image=name == "digits-cnn")
    if classes is not None:
        keep = np.isin(y, classes)
        x, y = x[keep], np.searchsorted(np.sort(classes), y[keep])
    rows = []
    for step, handle in iter_checkpoints(series, steps, device="cpu"):
        with torch.no_grad():
            acts = capture(handle, list(sites), torch.from_numpy(x), positions=None)
        head = last_linear(handle.model)
        classifier = torch.cat([head.weight, head.bias[:, None]], 1).detach().float().cpu().numpy()
        for site in sites:
            h = acts.numpy(site).reshape(len(y), -1)
            use_head = site == sites[-1] and classes is None
            # at most 1,797 rows x 256: one BLAS thread is fastest, and several spin-wait
            # badly on a busy machine (26x slower at load 8 on 2 cores, as in probes.linear)
            with threadpool_limits(1):
                metrics = collapse([h], y, classifier if use_head else None)
            rows += [
                {"model": name, "split": split, "checkpoint_step": step, "site": site,
                 "metric": key, "value": metrics[key]}
                for key in HEADLINE if key in metrics
            ]  # fmt: skip
        del handle, head, acts
    frame = pd.DataFrame(rows)
    return Result(
        analysis="neural-collapse",
        frame=frame,
        headline=_last_step_headline(frame, sites[-1]),
        params={"model": name, "split": split, "sites": list(sites), "classes": classes},
        provenance={
            "model": name,
            "series": str(series.folder),
            "steps": series.steps,
            "recipe_version": zoo.get_recipe(name).version,
        },
    )


def _last_step_headline(frame: pd.DataFrame, site: str) -> dict[str, Any]:
    last = frame[(frame.site == site) & (frame.checkpoint_step == frame.checkpoint_step.max())]
    return {
        "checkpoint_step": int(last.checkpoint_step.max()),
        **dict(zip(last.metric, last.value, strict=True)),
    }


ANALYSIS = Analysis(
    name="neural-collapse",
    params=Params,
    run=run,
    inputs=("acts", "labels"),
    summary="NC1-NC4 (Papyan et al. 2020): within/between variability, ETF, self-duality, NCC",
)
