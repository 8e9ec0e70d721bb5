"""The Explore page's view: which stores can be mapped beside a store, the map as a selectable
scatter, its selection in and out of the URL (`sel=0-4,9`), and the selection's panels as
charts. Pure functions (no Streamlit).

    partners = same_row_partners(stores, "stores/a", site)   # stores with as many rows there
    fig = map_figure(coords, rows, mask, labels, colour, title, info)
    sel = encode_selection(points)                            # the URL's `sel`, or None
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from analyses.explore.api import encode_rows

NONE = "(none)"  # the pickers' "no colour" / "no second store"


def same_row_partners(stores: dict[str, dict[str, Any]], name: str, site: str) -> list[str]:
    """The other stores of `stores` (`stores_by_path` entries, in their order) with as many
    rows as `name` and the site `site`: candidates to map beside it (`same_rows` tells)."""
    rows = stores[name]["n_rows"]
    return [
        other
        for other, entry in stores.items()
        if other != name and entry["n_rows"] == rows and site in entry["sites"]
    ]


def same_rows(a: Any, b: Any) -> bool:
    """Whether two stores hold the same rows: equal token ids, examples and positions (the same
    dataset captured from two checkpoints or models with one tokenizer)."""
    return all(
        np.array_equal(x(), y())
        for x, y in (
            (a.token_ids, b.token_ids),
            (a.example_index, b.example_index),
            (a.positions, b.positions),
        )
    )


def map_figure(coords, rows, mask, labels, colour_name, title, info) -> go.Figure:
    """The scatter of a map: one point per row (row id as customdata), coloured by
    `colour_name`'s values in numeric order, the selected rows (`mask`) ringed; `info["axes"]`
    names the axes."""
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "row": rows})
    category_order = {}
    if colour_name is not None:
        values = np.asarray(labels[colour_name])[rows]
        frame[colour_name] = values.astype(str)
        category_order = {colour_name: [str(v) for v in np.unique(values)]}
    fig = px.scatter(
        frame,
        x="x",
        y="y",
        color=colour_name,
        category_orders=category_order,
        custom_data=["row"],
        hover_data={"row": True, "x": False, "y": False},
        title=title,
        render_mode="webgl",
    )
    fig.update_traces(marker={"size": 5})
    if mask.any():
        ring = {"size": 11, "color": "rgba(0,0,0,0)", "line": {"width": 1.5, "color": "black"}}
        fig.add_trace(
            go.Scattergl(
                x=coords[mask, 0],
                y=coords[mask, 1],
                mode="markers",
                name=f"selected ({int(mask.sum())})",
                marker=ring,
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        xaxis_title=info["axes"][0], yaxis_title=info["axes"][1], dragmode="select", height=560
    )
    return fig


def row_of(point: dict) -> int | None:
    """The store row of a selected map point (its customdata; the selection ring has none).
    Streamlit hands customdata on as a list or as an index-keyed dict."""
    data = point.get("customdata")
    if isinstance(data, dict):
        data = data.get("0", data.get(0))
    elif isinstance(data, list | tuple):
        data = data[0] if data else None
    return None if data is None else int(data)


def encode_selection(points: list[dict]) -> str | None:
    """The URL's `sel` (compact row ranges) of the rows of selected map points; None when no
    point is a row."""
    rows = [row for row in map(row_of, points) if row is not None]
    return encode_rows(np.array(rows)) if rows else None


def makeup_figure(makeup: pd.DataFrame, colour_name: str, top: int = 40) -> go.Figure:
    """The share of each value of label `colour_name` among the selected rows beside its share
    among all rows (`selection_panels`' makeup; its first `top` values)."""
    long = makeup.melt(
        id_vars="value",
        value_vars=["share_selected", "share_all"],
        var_name="rows",
        value_name="share",
    )
    fig = px.bar(
        long.head(top),
        x="value",
        y="share",
        color="rows",
        barmode="group",
        title=f"{colour_name}: share among selected vs all rows",
    )
    return fig.update_xaxes(type="category", title=colour_name)


def units_figure(units: pd.DataFrame) -> go.Figure:
    """Bars of the units that set the selection apart (`selection_panels`' Cohen's d)."""
    fig = px.bar(
        units.assign(unit=units["unit"].astype(str)),
        x="unit",
        y="effect",
        title="Units that set the selection apart (Cohen's d)",
    )
    return fig.update_xaxes(type="category")


def rows_table(table: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The selected rows' table (`contexts`) and whether its rows are tokens; an image or array
    model's rows are examples, shown without the (empty) token and context columns."""
    if (table["token"] == "").all():
        return table.drop(columns=["token", "context"]), False
    return table, True
