"""The Geometry page's view: which stores can be drawn beside a store, the curves frame labelled
and tabled, its charts over layers and over checkpoints, and the store's checkpoint series.
Pure functions (no Streamlit).

    partners = shared_site_partners(stores, "stores/a")      # stores sharing a site with it
    frame = label(store_curves([...]))                       # + estimate, rows by layer
    layer_figure(frame, title, order, mark), values_table(frame), difference_table(a, b, order)
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px

from workbench_app.services.runsdir import checkpoint_series

NONE = "(none)"  # the pickers' "no second store" / "no marked site"

PANELS = [
    ("Intrinsic dimension", ["twonn", "mle", "pca-dim"]),
    ("Anisotropy (mean cosine of random pairs)", ["anisotropy"]),
    ("Effective rank (Roy & Vetterli)", ["effective-rank"]),
    ("Sparsity of units (after a nonlinearity)", ["sparsity"]),
]


def shared_site_partners(stores: dict[str, dict[str, Any]], name: str) -> list[str]:
    """The other stores of `stores` (`stores_by_path` entries) that share a site with `name`,
    in path order: the ones its curves can be drawn beside."""
    sites = set(stores[name]["sites"])
    return [
        other for other in sorted(stores) if other != name and set(stores[other]["sites"]) & sites
    ]


def partner_refusal(stores: dict[str, dict[str, Any]], name: str, partners: list[str]):
    """Why the URL's second store `wanted` is not drawn beside `name`: a function of it."""

    def why(wanted: str) -> str:
        if wanted in stores:
            return (
                f"`{wanted}` shares no site with `{name}`: not compared. Stores that do: "
                f"{', '.join(partners) or 'none'}."
            )
        return (
            f"No complete store `{wanted}` under the runs directory; valid: "
            f"{', '.join(sorted(stores))}."
        )

    return why


def label(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds `estimate` (analysis: metric) and orders rows by layer."""
    out = frame.assign(estimate=frame["analysis"] + ": " + frame["metric"])
    return out.sort_values(["layer", "site"], kind="stable")


def layer_figure(part: pd.DataFrame, title: str, order: list[str], mark: str | None):
    """The curves of `part` over sites (in `order`), one line per estimate, dashed per store
    when it holds two; `mark` (a site) drawn as a vertical line."""
    two = part["store"].nunique() > 1
    fig = px.line(
        part,
        x="site",
        y="value",
        color="estimate",
        line_dash="store" if two else None,
        symbol="store" if two else None,
        markers=True,
        title=title,
        category_orders={"site": order},
    )
    fig.update_layout(legend_title_text="", xaxis_title="site (by depth)")
    if mark is not None and mark in set(part["site"]):  # a site this chart has values at
        fig.add_vline(x=mark, line_dash="dot", line_color="grey")
    return fig


def layer_panels(shown: pd.DataFrame, order: list[str], mark: str | None):
    """(title, figure) of every `PANELS` entry `shown` (labelled curves) has values for."""
    for title, group in PANELS:
        part = shown[shown["analysis"].isin(group)]
        if not part.empty:
            yield title, layer_figure(part, title, order, mark)


def values_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Estimates as columns, one row per (layer, site)."""
    return frame.pivot_table(index=["layer", "site"], columns="estimate", values="value")


def side_by_side(
    frame: pd.DataFrame, frame_b: pd.DataFrame
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Two stores' labelled curves on their shared sites: (both frames' rows at those sites,
    the shared sites by depth, the sites only one of them has, sorted)."""
    order = [s for s in dict.fromkeys(frame["site"]) if s in set(frame_b["site"])]
    shown = pd.concat([frame, frame_b], ignore_index=True)
    only = sorted(set(frame["site"]) ^ set(frame_b["site"]))
    return shown[shown["site"].isin(order)], order, only


def difference_table(frame: pd.DataFrame, frame_b: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """`values_table(frame) - values_table(frame_b)` at the shared sites `order`."""
    diff = values_table(frame).sub(values_table(frame_b))
    return diff[diff.index.get_level_values("site").isin(order)]


def series_of(stores: dict[str, dict[str, Any]], name: str) -> list[tuple[Any, str]]:
    """The checkpoint series (`checkpoint_series`) store `name` belongs to, as (step, store)
    pairs; just itself (at its spec's step, maybe None) when it belongs to none."""
    return next(
        (series for series in checkpoint_series(stores).values() if name in dict(series).values()),
        [(stores[name]["spec"].get("checkpoint_step"), name)],
    )


def training_figure(over: pd.DataFrame, estimate: str):
    """One `estimate` of labelled curves over checkpoints, a line per site (log steps when step
    0 is not among them)."""
    part = over[over["estimate"] == estimate].sort_values("checkpoint_step")
    fig = px.line(
        part,
        x="checkpoint_step",
        y="value",
        color="site",
        markers=True,
        title=f"{estimate} over training",
    )
    if part["checkpoint_step"].min() > 0:
        fig.update_xaxes(type="log")
    return fig
