"""Linear probes: is a property linearly decodable from a site's activations?

`LinearProbe` fits multinomial logistic regression (class labels) or ridge regression (scalar
labels) on standardised features, choosing the regularisation by grouped k-fold
cross-validation on the training examples only (folds never split an example). Coefficients are
mapped back to raw feature units (`coef_` (K, d), `intercept_` (K,)), so a probe's direction
lives in the activation space it was trained on (see `probes.directions`).

The `probe` analysis (`run`) adds what makes the number interpretable (see `probes.controls`):
a split by example (`source.groups()`: tokens of one sentence never straddle train and test), a
95% cluster-bootstrap interval over test examples, the Hewitt & Liang (2019) control task on
token types (selectivity = accuracy - control accuracy), and the majority-class baseline.
Regression reports R^2 (`r2`, `control_r2`) instead of accuracy, against a mean baseline of
R^2 = 0. Labels < 0 (class tasks) or NaN (scalar tasks) mean "no label": those rows are dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from probes.controls import (
    cluster_bootstrap_ci,
    control_labels,
    majority_baseline,
    split_by_group,
)
from workbench.analysis.registry import Analysis
from workbench.analysis.results import Result
from workbench.analysis.sources import Source
from workbench.errors import InputError

TASKS = ("auto", "classification", "regression")
#: the probe's label levels: the store's (`workbench.analysis.sources.LABEL_LEVELS`), "auto"
#: (the only level the store holds the name at) and "last" (see `Params`)
LABEL_LEVELS = ("auto", "token", "example", "last")
#: older spelling of "token", still accepted
_ALIASES = {"row": "token"}


def _grid(text: str) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InputError(
            f"grid {text!r} must be comma-separated numbers, e.g. 0.01,0.1,1"
        ) from None
    if not values or min(values) <= 0:
        raise InputError(f"grid {text!r} must hold positive numbers")
    return values


def infer_task(labels: np.ndarray, task: str = "auto") -> str:
    """ "classification" for integer/bool labels (or floats that are all whole numbers), else
    "regression"; an explicit `task` wins."""
    if task not in TASKS:
        raise InputError(f"task {task!r}; valid: {', '.join(TASKS)}")
    if task != "auto":
        return task
    labels = np.asarray(labels)
    if labels.dtype.kind in "iub":
        return "classification"
    if labels.dtype.kind == "f":
        finite = labels[np.isfinite(labels)]
        return "classification" if np.all(finite == np.round(finite)) else "regression"
    raise InputError(f"labels of dtype {labels.dtype} are neither classes nor scalars")


class LinearProbe:
    """Logistic (classes) or ridge (scalars) probe with grouped-CV regularisation.

    Settings: `task` ("classification" | "regression"), `grid` (inverse strengths C for
    logistic regression, penalties alpha for ridge), `folds` (grouped CV folds), `seed`.
    Learnt: `coef_` (K, d) raw-unit weights (K = classes, or 1 for binary and regression),
    `intercept_` (K,), `classes_`, `reg_` (the chosen C or alpha), `cv_scores_` (grid value ->
    mean CV accuracy or R^2).
    """

    def __init__(
        self,
        task: str = "classification",
        grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0),
        folds: int = 3,
        seed: int = 0,
        max_iter: int = 500,
    ) -> None:
        self.task, self.grid, self.folds, self.seed, self.max_iter = (
            task,
            grid,
            folds,
            seed,
            max_iter,
        )

    def _model(self, reg: float) -> Any:
        from sklearn.linear_model import LogisticRegression, Ridge

        if self.task == "classification":
            return LogisticRegression(C=reg, max_iter=self.max_iter, tol=1e-4)
        return Ridge(alpha=reg)

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> LinearProbe:
        from threadpoolctl import threadpool_limits

        x = np.asarray(x, dtype=np.float64)
        groups = np.arange(len(x)) if groups is None else np.asarray(groups)
        self.mean_, scale = x.mean(axis=0), x.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        z = (x - self.mean_) / self.scale_
        folds = min(self.folds, len(np.unique(groups)))
        self.cv_scores_: dict[float, float] = {}
        # Small BLAS problems: one thread is fastest, and several spin-wait badly on a busy
        # machine (a 20x slowdown measured at load 10 on 2 cores).
        with threadpool_limits(1):
            if len(self.grid) > 1 and folds >= 2:
                self.cv_scores_ = self._cross_validate(z, y, groups, folds)
                self.reg_ = max(self.cv_scores_, key=lambda r: self.cv_scores_[r])
            else:
                self.reg_ = self.grid[len(self.grid) // 2]
            self.model_ = self._model(self.reg_).fit(z, y)
        coef = np.atleast_2d(self.model_.coef_)
        self.coef_ = coef / self.scale_
        self.intercept_ = np.atleast_1d(self.model_.intercept_) - self.coef_ @ self.mean_
        self.classes_ = getattr(self.model_, "classes_", None)
        return self

    def _cross_validate(
        self, z: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int
    ) -> dict[float, float]:
        """grid value -> mean score over grouped folds; within a fold the grid is walked from
        strong to weak regularisation, each fit warm-started from the previous one."""
        from sklearn.model_selection import GroupKFold

        scores: dict[float, list[float]] = {reg: [] for reg in self.grid}
        strong_first = sorted(self.grid, reverse=self.task == "regression")
        for a, b in GroupKFold(n_splits=folds).split(z, y, groups):
            if self.task == "classification" and len(np.unique(y[a])) < 2:
                continue
            model = self._model(strong_first[0])
            if self.task == "classification":
                model.set_params(warm_start=True)
            for reg in strong_first:
                model.set_params(**{"C" if self.task == "classification" else "alpha": reg})
                scores[reg].append(model.fit(z[a], y[a]).score(z[b], y[b]))
        return {reg: float(np.mean(v)) if v else -np.inf for reg, v in scores.items()}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted classes (or values) of rows `x` (n, d)."""
        return self.model_.predict((np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_)

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy (classification) or R^2 (regression)."""
        z = (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_
        return float(self.model_.score(z, y))


@dataclass(frozen=True)
class Params:
    """Settings of the `probe` analysis (conventions in the module docstring).

    task: auto | classification | regression. grid: comma-separated C (logistic) or alpha
    (ridge) values, chosen by `folds`-fold grouped CV on the training examples. test_fraction:
    share of examples held out. control: auto (token types when the store has token ids, else
    each row its own type; also when all training rows share one token) | token | row | none.
    label_level (stores): which label a row carries. token (the store's per-token row label) |
    example (the example's label on every row) | last (the example label on each example's
    last row only: what a causal model knows after the whole text; rows of an example are
    contiguous in a store) | auto (the default: the only level the store holds the name at; a
    name held at both levels, like grammar-lm's `topic`, is an error naming both). The level
    that ran is recorded in the result's params (`label_level`; "given" for a labels array).
    max_rows: seeded subsample of whole examples above this many rows (0 = all). seed: split,
    control and bootstrap seed.
    """

    task: str = "auto"
    grid: str = "0.01,0.1,1,10"
    folds: int = 3
    test_fraction: float = 0.25
    control: str = "auto"
    label_level: str = "auto"
    max_rows: int = 50000
    seed: int = 0

    def __post_init__(self) -> None:
        if _ALIASES.get(self.label_level, self.label_level) not in LABEL_LEVELS:
            raise InputError(
                f"setting label_level={self.label_level!r}; valid: {', '.join(LABEL_LEVELS)}"
            )


def probe_inputs(
    source: Source, params: Params
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(features (n, d), labels (n,), groups (n,), token types (n,) or None) of the labelled
    rows of `source`, subsampled by whole examples to at most `params.max_rows` rows."""
    labels = _labels(source, params.label_level)
    n_rows = source.store.n_rows if source.acts is None and source.store else None
    acts = None if n_rows is not None else source.matrix()
    n_rows = len(acts) if acts is not None else n_rows
    if len(labels) != n_rows:
        raise InputError(f"labels have {len(labels)} rows, activations {n_rows}; they must match")
    groups = source.groups()
    groups = np.arange(n_rows) if groups is None else groups
    types = None
    if source.store is not None and params.control in ("auto", "token"):
        token_ids = np.asarray(source.store.token_ids())
        types = token_ids if (token_ids >= 0).any() else None
    if params.control == "token" and types is None:
        raise InputError("control=token needs a store with token ids; valid here: row, none")
    keep = _labelled(labels)
    if params.max_rows and keep.sum() > params.max_rows:
        unique = np.unique(groups[keep])
        order = np.random.default_rng(params.seed).permutation(unique)
        sizes = pd.Series(keep).groupby(groups).sum().reindex(order).to_numpy()
        chosen = order[: max(1, int(np.searchsorted(np.cumsum(sizes), params.max_rows)))]
        keep &= np.isin(groups, chosen)
    rows = np.flatnonzero(keep)
    x = acts[rows] if acts is not None else source.store.read(source.site, rows)
    return x, labels[rows], groups[rows], None if types is None else types[rows]


def label_level(source: Source, level: str) -> str:
    """The level the probe reads for `level` (see `Params.label_level`): "token", "example",
    "last", or "given" (a labels array)."""
    level = _ALIASES.get(level, level)
    if level not in LABEL_LEVELS:
        raise InputError(f"setting label_level={level!r}; valid: {', '.join(LABEL_LEVELS)}")
    if level == "last":
        resolved = source.resolve_label_level("example")
        return "last" if resolved == "example" else resolved
    return source.resolve_label_level(level)


def _labels(source: Source, level: str) -> np.ndarray:
    resolved = label_level(source, level)
    if resolved != "last":
        return source.label_array(resolved if resolved != "given" else "auto")
    labels = source.label_array("example")
    example = source.store.example_index()
    is_last = np.r_[example[1:] != example[:-1], True]  # only each example's last row
    return np.where(is_last, labels, -1)


def _labelled(labels: np.ndarray) -> np.ndarray:
    if labels.dtype.kind == "f":
        return np.isfinite(labels) & ~((labels < 0) & (labels == np.round(labels)))
    return labels >= 0


def evaluate(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    types: np.ndarray | None,
    params: Params,
) -> dict[str, Any]:
    """Fit the probe and its control on a split by example; headline numbers (see module)."""
    task = infer_task(y, params.task)
    if task == "classification":
        y = y.astype(np.int64)
    train, test = split_by_group(groups, params.test_fraction, params.seed)
    if task == "classification" and len(np.unique(y[train])) < 2:
        raise InputError(
            f"the training split has one class only ({np.unique(y[train]).tolist()}); a probe "
            "needs >= 2 classes"
        )
    probe = LinearProbe(task, tuple(_grid(params.grid)), params.folds, params.seed)
    probe.fit(x[train], y[train], groups[train])
    score_name = "accuracy" if task == "classification" else "r2"
    out: dict[str, Any] = {"task": task, score_name: probe.score(x[test], y[test])}
    if task == "classification":
        correct = (probe.predict(x[test]) == y[test]).astype(np.float64)
        out["accuracy_ci"] = list(cluster_bootstrap_ci(correct, groups[test], seed=params.seed))
        out["majority_baseline"] = majority_baseline(y[train], y[test])
        out["n_classes"] = int(len(np.unique(y)))
    if types is not None and len(np.unique(types[train])) < 2:
        types = None  # one token type (e.g. every text ends in "."): the token control is void
    if params.control != "none":
        control_types = types if types is not None else np.arange(len(y))
        yc = control_labels(y, control_types, params.seed + 1)
        if task == "classification" and len(np.unique(yc[train])) < 2:
            # every training type drew the same label: the control probe is that constant
            out["control_accuracy"] = float(np.mean(yc[test] == yc[train][0]))
        else:
            control = LinearProbe(task, (probe.reg_,), params.folds, params.seed)
            control.fit(x[train], yc[train], groups[train])
            out[f"control_{score_name}"] = control.score(x[test], yc[test])
        out["control_kind"] = "token" if types is not None else "row"
        out["selectivity"] = out[score_name] - out[f"control_{score_name}"]
    out.update(
        regularisation=probe.reg_,
        n_train=int(len(train)),
        n_test=int(len(test)),
        n_test_examples=int(len(np.unique(groups[test]))),
    )
    return out


def run(source: Source, params: Params) -> Result:
    """Probe one site (store) or one array (n, d) for its labels (see module docstring)."""
    x, y, groups, types = probe_inputs(source, params)
    if len(y) == 0:
        raise InputError("no labelled rows (every label is negative or NaN)")
    out = evaluate(x, y, groups, types, params)
    site = source.site or "arrays"
    step = (source.provenance.get("spec") or {}).get("checkpoint_step")
    label = source.label or "labels"
    return Result(
        analysis="probe",
        frame=frame_rows(out, site=site, checkpoint_step=step, label=label),
        headline=out,
        params={**asdict(params), "label_level": label_level(source, params.label_level)},
        provenance=source.provenance,
    )


def frame_rows(out: dict[str, Any], **keys: Any) -> pd.DataFrame:
    """Tidy rows (keys..., metric, value) of an `evaluate` output's numbers."""
    rows = []
    for metric, value in out.items():
        if metric == "accuracy_ci":
            rows += [{**keys, "metric": "accuracy_ci_low", "value": value[0]}]
            rows += [{**keys, "metric": "accuracy_ci_high", "value": value[1]}]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append({**keys, "metric": metric, "value": float(value)})
    return pd.DataFrame(rows)


ANALYSIS = Analysis(
    name="probe",
    params=Params,
    run=run,
    inputs=("acts", "labels"),
    summary="linear probe (logistic/ridge) split by example, with control task and baseline",
)
