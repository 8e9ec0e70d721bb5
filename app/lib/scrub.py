"""The checkpoint scrubber of the app's Batch page, as pure functions: which checkpoint a URL
value names, a batch's single-valued metrics over sites at one checkpoint, and the zoo model's
training curve the batch's checkpoints come from.

    step = nearest_step([0, 4, 30], "5")                 # 4
    profile = layer_profile(rows, step, reference=0)     # metric, series, site, step, value
    curve = read_training_curve(curve_path("toy-lm", spec_text, [runs, zoo], zoo))
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import yaml

from workbench.errors import InputError
from workbench.sites.names import layer_index


def nearest_step(steps: Sequence[int], wanted: str | int | None) -> int:
    """The step of `steps` that `wanted` (a URL query value) names.

    A step in `steps` is itself; another number is the nearest step (a tie goes to the later
    step: a link to step 500 of a 256/768 schedule shows 768); a missing or unparseable value is
    the last step, which is what a finished run is usually opened at.
    """
    if not steps:
        raise InputError("no checkpoint steps to choose from")
    ordered = sorted(steps)
    try:
        number = float(wanted) if wanted is not None else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        return ordered[-1]
    return min(reversed(ordered), key=lambda s: abs(s - number))


def site_order(sites: Iterable[str]) -> list[str]:
    """Distinct `sites` in forward order: in the order given (a batch lists them in the model's
    order), with the sites that carry a layer number (`blocks.10.x`) sorted by it in the places
    they hold, so that text order never puts layer 10 before layer 2; sites without a number
    (`hook_embed`, `ln_final`) keep their places."""
    unique = list(dict.fromkeys(sites))
    slots = [i for i, s in enumerate(unique) if layer_index(s) is not None]
    numbered = sorted((unique[i] for i in slots), key=lambda s: layer_index(s) or 0)
    for slot, site in zip(slots, numbered, strict=True):
        unique[slot] = site
    return unique


def site_labels(sites: Sequence[str]) -> tuple[list[str], str]:
    """Short axis labels for `sites`: the dotted suffix all of them share is dropped and returned
    to name the axis (`blocks.0.hook_resid_post`, `blocks.1.hook_resid_post` -> `blocks.0`,
    `blocks.1` and `hook_resid_post`); a layer number is never dropped. The names are kept whole,
    with suffix "", when they share none, or when dropping it would leave a label empty or two
    labels equal."""
    parts = [site.split(".") for site in sites]
    shared = 0
    while parts and all(len(p) > shared + 1 for p in parts):
        tails = {p[-1 - shared] for p in parts}
        if len(tails) != 1 or next(iter(tails)).isdigit():  # a layer number stays in the label
            break
        shared += 1
    labels = [".".join(p[: len(p) - shared]) for p in parts]
    if shared == 0 or len(set(labels)) != len(labels):
        return list(sites), ""
    return labels, ".".join(parts[0][len(parts[0]) - shared :])


def _series(rows: pd.DataFrame) -> pd.Series:
    """Line label of each row: its dataset, plus the other site and step of a paired cell."""
    label = rows["dataset"].astype(str)
    for column, prefix in (("site_b", " vs "), ("step_b", " @")):
        if column in rows.columns:
            other = rows[column]
            label = label + other.map(lambda v, p=prefix: "" if pd.isna(v) else p + _text(v))
    return label


def _text(value: object) -> str:
    """`8` for a step that a column with gaps holds as 8.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def layer_profile(rows: pd.DataFrame, step: int, reference: int | None = None) -> pd.DataFrame:
    """The per-site values of `rows` at checkpoint `step`, and at `reference` when it is given
    and differs (the curve to compare against, e.g. the first step).

    Args:
        rows: one model's single-valued metric rows of a batch (columns `metric`, `dataset`,
            `site`, `step`, `value`; `site_b`, `step_b` when present name paired cells).
        step: the checkpoint to show.
        reference: another checkpoint to show beside it, or None.

    Returns:
        columns metric, series (dataset, and the pair for paired cells), site, step, value
        (float), reference (True on the reference step's rows); ordered by metric (first
        appearance), reference rows last, then series and `site_order`.
    """
    steps = [step] if reference is None or reference == step else [step, reference]
    chosen = rows[rows["step"].isin(steps)]
    order = {site: i for i, site in enumerate(site_order(rows["site"]))}
    metrics = {metric: i for i, metric in enumerate(dict.fromkeys(rows["metric"]))}
    out = pd.DataFrame(
        {
            "metric": chosen["metric"].astype(str),
            "series": _series(chosen),
            "site": chosen["site"].astype(str),
            "step": chosen["step"].astype(int),
            "value": pd.to_numeric(chosen["value"], errors="coerce").astype(float),
            "reference": chosen["step"] != step,
        }
    )
    out = out.assign(_m=out["metric"].map(metrics), _s=out["site"].map(order))
    out = out.sort_values(["_m", "reference", "series", "_s"], kind="stable")
    return out.drop(columns=["_m", "_s"]).reset_index(drop=True)


def values_table(profile: pd.DataFrame) -> pd.DataFrame:
    """The scrubbed step's rows of a `layer_profile` as a table: one row per (series, site) in
    profile order, one column per metric in profile order."""
    shown = profile[~profile["reference"]]
    table = shown.pivot(index=["series", "site"], columns="metric", values="value")
    index = list(dict.fromkeys(zip(shown["series"], shown["site"], strict=True)))
    table = table.reindex(index=pd.MultiIndex.from_tuples(index, names=["series", "site"]))
    table = table[list(dict.fromkeys(shown["metric"]))]
    table.columns.name = None
    return table.reset_index()


def curve_path(model: str, spec_text: str, allowed: Sequence[Path], default_zoo: Path) -> Path:
    """Where the training curve of zoo model `model` lies: `<zoo>/<model>/metrics.json` of the
    zoo the batch was run on (its spec's `zoo_root`, else `default_zoo`, the app's zoo; a
    relative `zoo_root` is taken from the working directory, as `workbench batch run` did).

    Raises InputError when `model` is not a zoo name (a series folder, a hub model) or the file
    lies outside every folder of `allowed` (the app reads only its runs directory and its zoo).
    """
    if not model or Path(model).name != model or model in (".", ".."):
        raise InputError(f"model {model!r} is not a zoo name: no zoo training curve for it")
    try:
        spec = yaml.safe_load(spec_text) or {}
    except yaml.YAMLError:
        spec = {}
    given = spec.get("zoo_root") if isinstance(spec, dict) else None
    zoo = Path(str(given)) if given else default_zoo
    path = (zoo / model / "metrics.json").resolve()
    roots = [Path(root).resolve() for root in allowed]
    if not any(root in path.parents for root in roots):
        raise InputError(
            f"the batch's zoo {str(zoo)!r} lies outside the folders the app reads "
            f"({', '.join(map(str, roots))}): start the app with `--zoo-root {zoo}` to see "
            "the training curve"
        )
    return path


def read_training_curve(path: Path) -> pd.DataFrame:
    """A zoo model's training curve from its `metrics.json`: one row per evaluated step, column
    `step` (ints, ascending) and the numeric columns the recipe wrote (`train_loss`,
    `test_loss`; `train_acc`, `test_acc` for mod-add and digits).

    Reads the LM recipes' `{"curve": [...], ...}` and the plain list of rows of mod-add and the
    digits models; the digits rows count `epoch`, which is the step of their checkpoint series
    (`step_<epoch>.safetensors`), so it is named `step` here.

    Raises InputError when the file is missing, not JSON, or holds no curve with steps.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"no training curve: {str(path)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"no training curve: {str(path)!r} is not readable JSON ({exc})") from None
    points = data.get("curve") if isinstance(data, dict) else data
    if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
        raise InputError(f"no training curve in {str(path)!r}: expected a list of rows")
    frame = pd.DataFrame(points)
    if "step" not in frame.columns and "epoch" in frame.columns:
        frame = frame.rename(columns={"epoch": "step"})
    if "step" not in frame.columns:
        raise InputError(
            f"no training curve in {str(path)!r}: its rows have no step or epoch "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    numeric = frame.apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
    numeric = numeric.dropna(subset=["step"]).astype({"step": int})
    return numeric.sort_values("step", kind="stable").reset_index(drop=True)
