"""Which site of a steering sweep moved the concept, if any: the one rule the CLI's report, the
demo and the app's Steering page all use.

A sweep measures, per site, the concept direction's effect at the largest coefficient (the
behaviour metric minus its value at coefficient 0) and the same for random directions of the
same norm at the same site (the control; their mean). A site *moved the concept* when

    effect > EFFECT_FLOOR   and   effect >= CONTROL_RATIO * |control|

with EFFECT_FLOOR = 0.02 in the metric's units (the sweep metrics are probability masses or
fractions in [-1, 1]: two percentage points) and CONTROL_RATIO = 2 (the concept does at least
twice what a random direction of its norm does, whichever way the random one moved). The best
site is the one with the largest effect among those that moved it; when none did, there is no
best site (None) and the report says so in one sentence naming the largest effect seen, its
control and the floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: smallest concept effect (metric units: probability mass / fraction) that counts as a move
EFFECT_FLOOR = 0.02
#: the concept effect must be at least this multiple of |random-direction control|
CONTROL_RATIO = 2.0


@dataclass(frozen=True)
class BestSite:
    """The verdict of a sweep: `site` (None when no site moved the concept) and `sentence`, one
    sentence saying which site moved it by how much, or that none did."""

    site: str | None
    sentence: str


def sweep_effects(frame: pd.DataFrame, metric: str) -> tuple[float, dict[str, dict[str, float]]]:
    """(baseline, site -> {"concept": effect, "control": control}) of a sweep's long frame
    (columns site, direction, coeff, metric, value): the metric at the largest coefficient minus
    its mean at coefficient 0, for the concept direction and for the mean of the random ones."""
    top = frame[(frame.metric == metric) & (frame.coeff == frame.coeff.max())]
    base = float(frame[(frame.metric == metric) & (frame.coeff == 0.0)].value.mean())
    effects = {}
    for site, group in top.groupby("site", sort=False):
        concept = float(group[group.direction == "concept"].value.mean())
        control = float(group[group.direction == "random"].value.mean())
        effects[str(site)] = {"concept": concept - base, "control": control - base}
    return base, effects


def moved(effect: float, control: float, floor: float = EFFECT_FLOOR) -> bool:
    """Whether a concept `effect` with random-direction `control` passes the rule above."""
    if not (math.isfinite(effect) and math.isfinite(control)):
        return False
    return effect > floor and effect >= CONTROL_RATIO * abs(control)


def best_site(effects: Mapping[str, Mapping[str, float]], floor: float = EFFECT_FLOOR) -> BestSite:
    """The verdict for `effects` (site -> {"concept": effect, "control": control}, as in a
    sweep's headline `effect_at_max_coeff`)."""
    if not effects:
        return BestSite(None, "No site was swept.")
    rows = {site: (float(e["concept"]), float(e["control"])) for site, e in effects.items()}
    passing = [site for site, (c, r) in rows.items() if moved(c, r, floor)]
    if passing:
        site = max(passing, key=lambda s: rows[s][0])
        effect, control = rows[site]
        ratio = f"{effect / abs(control):.1f}x" if control else "infinitely many times"
        return BestSite(
            site,
            f"Best site {site}: concept effect {effect:+.3g}, {ratio} its random-direction "
            f"control ({control:+.3g}), above the floor {floor:g}.",
        )
    finite = {s: v for s, v in rows.items() if math.isfinite(v[0])}
    if not finite:
        return BestSite(None, "No site moved the concept: every effect was NaN.")
    site = max(finite, key=lambda s: finite[s][0])
    effect, control = finite[site]
    return BestSite(
        None,
        f"No site moved the concept: the largest effect was {effect:+.3g} at {site} "
        f"(random-direction control {control:+.3g}); a site must exceed the floor {floor:g} "
        f"and be at least {CONTROL_RATIO:g}x its control.",
    )
