"""The terminal phase of training in a neural-collapse sweep over checkpoints (Papyan, Han &
Donoho 2020): the first checkpoint at which the network classifies every measured row right
(zero training error when the rows are the training split), and how far each NC metric falls
from there to the last checkpoint.

    summary = terminal_phase(over_checkpoints("digits-mlp").frame)
    print("\\n".join(finding_lines(summary)))

The paper's signatures, all read at the deepest site (the classifier's input): NC1 falls (by
orders of magnitude in the paper), the NC2 measures of the class means and of the classifier's
rows shrink (equinorm, equiangular, at the simplex angle), NC3 shrinks (the classifier aligns
with the centred class means) and NC4 (disagreement with the nearest class mean) goes to 0.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench.errors import InputError

#: metrics of the summary, in the order of the paper's signatures
SIGNATURES = (
    "nc1",
    "nc2_equinorm",
    "nc2_equiangular",
    "nc2_max_angle",
    "nc2_equinorm_weights",
    "nc2_max_angle_weights",
    "nc3",
    "nc4",
)


def terminal_phase(frame: pd.DataFrame, site: str | None = None) -> dict[str, Any]:
    """Summary of a sweep frame (columns checkpoint_step, site, metric, value; the frame of
    `over_checkpoints`) at `site` (default: the classifier's input, i.e. the one site with
    classifier metrics, else the frame's last site).

    Returns `site`, `first_step`, `zero_error_step` (the first checkpoint whose `net_accuracy`
    is exactly 1.0; None if none is, or if the frame has no classifier metrics), `last_step`,
    `terminal_steps` (last - zero-error steps, 0 without one) and `metrics`: for each of
    `SIGNATURES` present, {"first", "zero_error", "last"} values (zero_error None without a
    zero-error checkpoint), plus `nc1_fall` = NC1 at zero error / NC1 at the last checkpoint
    (None without one)."""
    if frame.empty:
        raise InputError("the sweep has no rows: no checkpoints were measured")
    if site is None:
        with_head = frame.site[frame.metric == "net_accuracy"].unique()
        site = with_head[0] if len(with_head) == 1 else frame.site.iloc[-1]
    rows = frame[frame.site == site]
    if rows.empty:
        raise InputError(
            f"site {site!r} is not in the sweep; valid: {', '.join(frame.site.unique())}"
        )
    wide = rows.pivot_table(index="checkpoint_step", columns="metric", values="value")
    wide = wide.sort_index()
    first, last = int(wide.index[0]), int(wide.index[-1])
    zero = None
    if "net_accuracy" in wide:
        perfect = wide.index[wide["net_accuracy"] == 1.0]
        zero = int(perfect[0]) if len(perfect) else None
    metrics = {
        key: {
            "first": float(wide.at[first, key]),
            "zero_error": None if zero is None else float(wide.at[zero, key]),
            "last": float(wide.at[last, key]),
        }
        for key in SIGNATURES
        if key in wide
    }
    if "nc1" not in metrics:
        raise InputError(f"the sweep has no nc1 rows at site {site!r}: not a neural-collapse sweep")
    at_zero, at_last = metrics["nc1"]["zero_error"], metrics["nc1"]["last"]
    fall = None if at_zero is None or at_last is None or at_last <= 0 else at_zero / at_last
    return {
        "site": site,
        "first_step": first,
        "zero_error_step": zero,
        "last_step": last,
        "terminal_steps": 0 if zero is None else last - zero,
        "metrics": metrics,
        "nc1_fall": fall,
    }


def _path(values: dict[str, float | None], steps: tuple[int, int | None, int]) -> str:
    """One metric's first, zero-error and last values: `a (epoch i) -> b (epoch j) -> c (epoch
    k)` (the zero-error value left out when there is none or it is the first or last step)."""
    parts = [f"{values['first']:.3g} (epoch {steps[0]})"]
    if values["zero_error"] is not None and steps[1] not in (None, steps[0], steps[2]):
        parts.append(f"{values['zero_error']:.3g} (epoch {steps[1]})")
    parts.append(f"{values['last']:.3g} (epoch {steps[2]})")
    return " -> ".join(parts)


def finding_lines(summary: dict[str, Any]) -> list[str]:
    """The terminal phase in words and numbers, one line per signature."""
    steps = (summary["first_step"], summary["zero_error_step"], summary["last_step"])
    metrics = summary["metrics"]
    if summary["zero_error_step"] is None:
        head = (
            f"no terminal phase at {summary['site']}: the network never classifies every "
            "measured row right at a checkpoint (on the training split this means training "
            "error never reached zero; on held-out rows it need not)"
        )
    else:
        head = (
            f"terminal phase at {summary['site']}: zero error from epoch {steps[1]} to "
            f"{steps[2]} ({summary['terminal_steps']} epochs); NC1 fell "
            f"{summary['nc1_fall']:.3g}x over it"
        )
    names = {
        "nc1": "NC1 Tr(Sw Sb+)/C",
        "nc2_equinorm": "NC2 equinorm (means)",
        "nc2_equiangular": "NC2 equiangular (means)",
        "nc2_max_angle": "NC2 simplex angle (means)",
        "nc2_equinorm_weights": "NC2 equinorm (classifier)",
        "nc2_max_angle_weights": "NC2 simplex angle (classifier)",
        "nc3": "NC3 classifier vs means",
        "nc4": "NC4 net vs nearest mean",
    }
    return [head, *(f"  {names[key]}: {_path(metrics[key], steps)}" for key in metrics)]
