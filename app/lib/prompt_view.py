"""The Prompt page's view of a `workbench.analysis.prompt.PromptUnits` (SAE latents or codebook
codes on one prompt): the tokens coloured by their strongest unit, the top units' table with a
link to each unit's page, and one token's units with the logits they push up and down. Pure
functions (no Streamlit).

    tokens_html(view, units, selected), legend_html(view, units), units_frame(view, units)
    detail_frame(detail, view), token_label(view, i), ranking_note(view)
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
from plotly.colors import qualitative

from workbench.analysis.prompt import PromptUnits
from workbench_app.lib.links import unit_link

PALETTE = qualitative.Plotly  # one colour per top unit, in rank order
OTHER = "#9e9e9e"  # a token whose strongest unit is not among the top ones


def colours(units: list[int]) -> dict[int, str]:
    """unit -> hex colour, by rank (the palette repeats after 10 units)."""
    return {j: PALETTE[i % len(PALETTE)] for i, j in enumerate(units)}


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{max(0.0, min(1.0, alpha)):.2f})"


def strength(view: PromptUnits, unit: int, act: float) -> float:
    """How strongly `unit` fires at activation `act`, in [0, 1]: over its largest activation on
    the reference rows (`view.scale`) when known, else over its largest on this prompt."""
    top = float(view.scale[unit]) if view.scale is not None else float(view.acts[:, unit].max())
    return act / top if top > 0 else 0.0


def _label(view: PromptUnits, unit: int) -> str:
    label = view.labels.get(unit)
    return f" ({label['label']}, precision {label['precision']:.2f})" if label else ""


def ranking_note(view: PromptUnits) -> str:
    """How the top units are ranked (`PromptUnits.top_units`), in a sentence."""
    what = (
        "its activation over its largest on the feature report's rows"
        if view.scale is not None
        else "its activation"
    )
    skipped = ", ".join(repr(view.tokens.tokens[i]) for i in view.skip or [])
    but = f", special tokens ({skipped}) shown but not ranked" if skipped else ""
    return f"Score: the sum over the tokens of {what}{but}. Activation per token."


def token_label(view: PromptUnits, i: int) -> str:
    """A token's name in the token picker: its index and text."""
    return f"{i}: {view.tokens.tokens[i]!r}"


def tokens_html(view: PromptUnits, units: list[int], selected: int | None = None) -> str:
    """The prompt's tokens, each with the background of its strongest unit's colour (grey when
    that unit is not in `units`), its opacity the unit's `strength`; the tooltip lists the
    token's three strongest units; `selected` is underlined."""
    palette = colours(units)
    parts = []
    for i, token in enumerate(view.tokens.tokens):
        strongest = view.token_units(i, 3)
        tip = (
            "; ".join(f"{view.unit} {j}: {a:.3f}{_label(view, j)}" for j, a in strongest)
            or f"no {view.unit} fires"
        )
        style = "padding:2px 3px;margin:1px;border-radius:3px;display:inline-block;"
        if strongest:
            j, act = strongest[0]
            alpha = 0.2 + 0.8 * strength(view, j, act)
            style += f"background:{_rgba(palette.get(j, OTHER), alpha)};"
        if i == selected:
            style += "border-bottom:3px solid #222;"
        text = html.escape(token) or "&nbsp;"
        parts.append(f'<span title="{html.escape(f"{i}: {tip}")}" style="{style}">{text}</span>')
    return f"<div style='line-height:2.2;font-family:monospace'>{''.join(parts)}</div>"


def legend_html(view: PromptUnits, units: list[int]) -> str:
    """The colour of each top unit, with its best-matching label."""
    palette = colours(units)
    items = [
        f"<span style='background:{_rgba(palette[j], 0.8)};padding:1px 6px;border-radius:3px;"
        f"margin-right:8px'>{view.unit} {j}{html.escape(_label(view, j))}</span>"
        for j in units
    ]
    return f"<div class='prompt-legend' style='line-height:2'>{''.join(items)}</div>"


def units_frame(view: PromptUnits, units: list[int]) -> pd.DataFrame:
    """The top units' table (`PromptUnits.table`) with a `page` column: the link to each unit's
    page (None where the view has no link target)."""
    frame = view.table(units)
    if frame.empty:
        return frame
    links = [unit_link(view.links[j]) if j in view.links else None for j in frame[view.unit]]
    frame.insert(1, "page", links)
    return frame


def detail_frame(detail: dict[str, Any], view: PromptUnits) -> pd.DataFrame:
    """One row per unit of a token's detail (`token_detail`): its activation, best label, the
    tokens it pushes up and down (with their logit), when known."""
    rows = []
    for row in detail["units"]:
        j = row[view.unit]
        label = view.labels.get(j, {})
        rows.append(
            {
                view.unit: j,
                "activation": row["act"],
                "best label": label.get("label"),
                "precision": label.get("precision"),
                "pushes up": ", ".join(f"{t} {v:+.2f}" for t, v in row.get("up", [])),
                "pushes down": ", ".join(f"{t} {v:+.2f}" for t, v in row.get("down", [])),
            }
        )
    return pd.DataFrame(rows)
