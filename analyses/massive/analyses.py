"""Massive activations: find them in a site's hidden states, and fit their training dynamics.

Two analyses:

- `massive` (inputs: acts): streaming detection over a store site or an (n, d) array, one row
  per token. The top-k |a| with (row, example, position, token id, token text when the store's
  model has a tokenizer, dim), the ratio to the median |a| of the row's hidden state, Sun et al.
  2024's criterion in its two parts (|a| > `abs_threshold`, |a| > `rel_threshold` x median),
  the paper's per-sequence max/median ratio, which dims recur across inputs and which
  positions and tokens carry each example's largest activation. O(N d) per site (selection,
  no sort), memory constant in the number of rows. See `analyses/massive/detect.py`.
- `massive-fit` (inputs: a trajectory, read from `--acts traj.npy` of shape (n, 2) = (step,
  value), or (n, 3) = (step, value, layer)): fit f(t) = A e^(-lambda x) log(x) + K,
  x = gamma t + t0 (Gallego-Feliciano et al., arXiv:2508.03616, Eq. 9) per layer, with R^2,
  the peak step and the power-law and logistic families beside it. See `analyses/massive/trajectory.py`.
  Python API: `fit_trajectories(frame_or_csv_or_parquet)`; a checkpoint series goes through
  `analyses.massive.track.track_series` first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analyses.massive.detect import MassiveDetector
from analyses.massive.trajectory import FAMILIES, fit_families
from workbench.analysis.registry import Analysis
from workbench.analysis.results import Result
from workbench.analysis.sources import Source
from workbench.errors import InputError


@dataclass(frozen=True)
class Params:
    """Settings of `massive`.

    topk: entries of largest |a| listed. abs_threshold / rel_threshold: Sun et al.'s criterion
    (|a| > 100 and > 1000 x the median |a| of the row's hidden state). max_listed: entries kept
    per criterion list. batch_size: rows per streamed batch. tokenizer: "auto" (the tokenizer
    beside the store's model, if any), "none", or a Hugging Face tokenizer folder.
    """

    topk: int = 16
    abs_threshold: float = 100.0
    rel_threshold: float = 1000.0
    max_listed: int = 64
    batch_size: int = 8192
    tokenizer: str = "auto"


SCALARS = (
    "max_abs",
    "ratio_to_median",
    "max_row_ratio",
    "sequence_ratio",
    "mean_sequence_max_abs",
    "mean_sequence_median_abs",
    "share_first_position",
    "share_delimiter",
)


def detect(source: Source, params: Params) -> dict[str, Any]:
    """The detector's summary for one source (see the module docstring); streams the rows."""
    store = source.store if source.acts is None else None
    example = position = token = None
    if store is not None:
        example = np.asarray(store.example_index())
        token = np.asarray(store.token_ids())
        position = np.asarray(store.positions())
        if token.size and (token < 0).all():  # plain-module rows: no token, no position
            token = position = None
    detector: MassiveDetector | None = None
    start = 0
    for batch in source.iter_rows(params.batch_size):
        if detector is None:
            detector = MassiveDetector(
                batch.shape[1],
                params.topk,
                params.abs_threshold,
                params.rel_threshold,
                params.max_listed,
            )
        rows = slice(start, start + len(batch))
        detector.update(
            batch,
            np.arange(rows.start, rows.stop),
            None if example is None else example[rows],
            None if position is None else position[rows],
            None if token is None else token[rows],
        )
        start = rows.stop
    if detector is None or detector.n_rows == 0:
        where = f"store {store.path} site {source.site!r}" if store is not None else "the array"
        raise InputError(f"{where} has no rows: nothing to search for massive activations")
    decode = token_decoder(params.tokenizer, store) if token is not None else None
    return detector.summary(example, position, token, decode)


def run(source: Source, params: Params) -> Result:
    """Massive activations of one site (store) or one (n, d) array."""
    summary = detect(source, params)
    site = source.site or "arrays"
    step = (source.provenance.get("spec") or {}).get("checkpoint_step")
    rows: list[dict[str, Any]] = [
        {"site": site, "checkpoint_step": step, "metric": key, "value": _num(summary[key])}
        for key in SCALARS
    ]
    rows += [
        {"site": site, "checkpoint_step": step, "metric": key, "value": float(value)}
        for key, value in summary["criteria"].items()
        if key.startswith("n_")
    ]
    for rank, entry in enumerate(summary["top_values"]):
        rows.append(
            {
                "site": site,
                "checkpoint_step": step,
                "metric": "top_abs",
                "value": entry["abs"],
                "rank": rank,
                **{k: entry.get(k) for k in ("dim", "row", "example", "position", "token_id")},
                "token": entry.get("token"),
                "ratio_to_median": _num(entry["ratio_to_median"]),
            }
        )
    return Result(
        analysis="massive",
        frame=pd.DataFrame(rows),
        headline={"site": site, **summary},
        params=asdict(params),
        provenance=source.provenance,
    )


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def token_decoder(choice: str, store: Any) -> Any:
    """`decode(token_id) -> str` from the tokenizer named by `choice` ("auto": the folder in the
    store's provenance `location`, when it holds a tokenizer), or None."""
    if choice == "none":
        return None
    folder = (store.provenance.get("location") if store is not None else None) or ""
    if choice != "auto":
        folder = choice
        if not Path(folder).is_dir():
            raise InputError(f"tokenizer={choice!r}: not a folder; valid: auto, none, a folder")
    from workbench.data.tokens import folder_decoder

    return folder_decoder(folder)


# ------------------------------------------------------------------------------ massive-fit
@dataclass(frozen=True)
class FitParams:
    """Settings of `massive-fit`: `family` (exp-log, power, logistic) is fitted and its
    refusals raised; `compare` adds the other families; `loss`/`f_scale`: see `fit_curve`."""

    family: str = "exp-log"
    compare: bool = True
    loss: str = "soft_l1"
    f_scale: float = 0.05


def read_trajectory(data: Any) -> pd.DataFrame:
    """A trajectory frame with columns step, value[, layer] from a DataFrame, a CSV or a
    parquet file, or an (n, 2)/(n, 3) array of (step, value[, layer])."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise InputError(f"trajectory file {str(path)!r} does not exist")
        if path.suffix == ".csv":
            data = pd.read_csv(path)
        elif path.suffix in (".parquet", ".pq"):
            data = pd.read_parquet(path)
        else:
            raise InputError(f"trajectory format {path.suffix!r}; valid: .csv, .parquet")
    if isinstance(data, np.ndarray):
        if data.ndim != 2 or data.shape[1] not in (2, 3):
            raise InputError(
                f"a trajectory array must be (n, 2) = (step, value) or (n, 3) = (step, value, "
                f"layer), got shape {data.shape}"
            )
        data = pd.DataFrame(data, columns=["step", "value", "layer"][: data.shape[1]])
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"cannot read a trajectory from {type(data).__name__}")
    missing = {"step", "value"} - set(data.columns)
    if missing:
        raise InputError(
            f"trajectory lacks columns {sorted(missing)}; has {list(data.columns)}; "
            "valid: step, value[, layer]"
        )
    if len(data) == 0:
        raise InputError("the trajectory is empty")
    columns = ["step", "value", "layer"] if "layer" in data.columns else ["step", "value"]
    return data[columns].reset_index(drop=True)


def fit_trajectories(data: Any, params: FitParams | None = None, provenance: Any = None) -> Result:
    """Fit every layer's trajectory (one fit when there is no layer column); see the module
    docstring. Refuses NaN values and fewer points than the family's parameters."""
    params = params or FitParams()
    if params.family not in FAMILIES:
        raise InputError(f"unknown family {params.family!r}; valid: {', '.join(FAMILIES)}")
    frame = read_trajectory(data)
    groups = frame.groupby("layer", sort=True) if "layer" in frame else [(None, frame)]
    rows, layers = [], []
    for layer, group in groups:
        layer = None if layer is None else int(layer)
        fits = fit_families(
            group["step"].to_numpy(),
            group["value"].to_numpy(),
            params.family,
            params.compare,
            loss=params.loss,
            f_scale=params.f_scale,
        )
        main = fits[params.family]
        layers.append(
            {"layer": layer, **main.to_json(), "comparison": {k: f.r2 for k, f in fits.items()}}
        )
        for name, fit in fits.items():
            metrics = {"r2": fit.r2, "rmse": fit.rmse, "peak_step": _num(fit.peak_step)}
            metrics.update({f"param_{k}": v for k, v in fit.params.items()})
            rows += [
                {"layer": layer, "family": name, "metric": k, "value": v}
                for k, v in metrics.items()
            ]
    headline: dict[str, Any] = {"family": params.family, "layers": layers}
    if len(layers) == 1:
        headline.update({k: layers[0][k] for k in ("r2", "peak_step", "peak_in_range", "params")})
    else:
        headline["mean_r2"] = float(np.mean([entry["r2"] for entry in layers]))
    return Result(
        analysis="massive-fit",
        frame=pd.DataFrame(rows),
        headline=headline,
        params=asdict(params),
        provenance=dict(provenance or {}),
    )


def run_fit(source: Source, params: FitParams) -> Result:
    """`massive-fit` on an (n, 2) or (n, 3) array (CLI: `--acts traj.npy`)."""
    if source.acts is None:
        raise InputError(
            "massive-fit reads a trajectory: pass --acts traj.npy of shape (n, 2) = (step, value)"
            " or (n, 3) = (step, value, layer); a store site is not a trajectory"
        )
    return fit_trajectories(np.asarray(source.acts, dtype=np.float64), params, source.provenance)


ANALYSES = [
    Analysis(
        name="massive",
        params=Params,
        run=run,
        inputs=("acts",),
        summary="massive activations: top |a| with dims, tokens, ratio to the median (Sun 2024)",
    ),
    # "trajectory": an (n, 2) array of (step, value) read through --acts; not per-site
    # activations, so the demo (which runs analyses whose inputs are exactly ("acts",)) skips it
    Analysis(
        name="massive-fit",
        params=FitParams,
        run=run_fit,
        inputs=("acts", "trajectory"),
        summary="fit f(t) = A e^(-lambda x) log x + K to a (step, value) trajectory",
    ),
]
