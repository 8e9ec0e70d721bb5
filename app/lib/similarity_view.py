"""The Similarity page's view: its maps as selectable heatmaps, the selected cell in and out of
the URL, the selected pair's table, spectra and links. Pure functions (no Streamlit).

A map is a headline of `analyses.similarity.maps` with `matrix` (rows x columns) and its `y`
(row) and `x` (column) labels. Plotly heatmaps report no selection to Streamlit (it forwards
only `plotly_selected`, which heatmap traces never raise), so `heatmap` puts an invisible marker
at every cell centre, which clicks and boxes select; `encode_cell` reads the selected markers
back as the URL's `ROW,COLUMN`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from workbench_app.lib.links import page_link
from workbench_app.services.runsdir import SAME_ROWS, richest_first

Cell = tuple[str, str]  # (row label, column label) of a map
Links = list[tuple[str, str]]  # (text, URL)


def labels(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """A map's row and column labels as text (what cells and URLs name)."""
    return [str(v) for v in result["y"]], [str(v) for v in result["x"]]


def cell_of(point: dict) -> Cell | None:
    """(row label, column label) of a selected cell marker (its customdata; the heatmap itself
    reports no points). Streamlit hands customdata on as a list or as an index-keyed dict."""
    data = point.get("customdata")
    if isinstance(data, dict):
        data = [data.get(str(i), data.get(i)) for i in range(2)]
    if not isinstance(data, list | tuple) or len(data) < 2 or None in data[:2]:
        return None
    return str(data[0]), str(data[1])


def encode_cell(points: list[dict]) -> str | None:
    """The URL value `ROW,COLUMN` of the first selected cell among `points` (a click, or the
    first cell of a box); None when no point is a cell."""
    cells = [cell for cell in map(cell_of, points) if cell is not None]
    return ",".join(cells[0]) if cells else None


def cell_texts(rows: Sequence[str], cols: Sequence[str]) -> list[str]:
    """Every URL value `ROW,COLUMN` naming a cell of a map with these labels."""
    return [f"{row},{col}" for row in rows for col in cols]


def cell_refusal(param: str, rows: Sequence[str], cols: Sequence[str]) -> Callable[[str], str]:
    """Why URL parameter `param`'s value names no cell of the map: a function of the value."""
    return lambda text: (
        f"No cell `{text}` in this map ({param}=ROW,COLUMN): rows are {', '.join(rows)}; "
        f"columns are {', '.join(cols)}. Click a cell to pick one."
    )


def split_cell(text: str) -> Cell:
    """`ROW,COLUMN` as (row, column)."""
    row, _, col = text.partition(",")
    return row, col


def cell_value(result: dict[str, Any], cell: Cell) -> float:
    """The map's number at `cell`."""
    rows, cols = labels(result)
    return result["matrix"][rows.index(cell[0])][cols.index(cell[1])]


def heatmap(
    result: dict[str, Any], measure: str, title: str, axes: tuple[str, str], cell: Cell | None,
    hover: str,
) -> go.Figure:  # fmt: skip
    """The map as a heatmap of `measure` with an invisible marker at each cell centre
    (customdata: row and column label, value), so that a click or a box selects cells:
    Streamlit reports selections only of traces plotly can select points of, which heatmaps are
    not. `hoverdistance=-1` makes a click anywhere in a cell land on its marker. `axes`: (x, y)
    titles; the selected `cell` is outlined."""
    z = np.array(result["matrix"], dtype=float)
    ys, xs = labels(result)
    fig = px.imshow(
        z,
        x=xs,
        y=ys,
        zmin=0,
        zmax=1,
        aspect="auto",
        color_continuous_scale="Viridis",
        labels={"color": measure},
        text_auto=".2f",
        title=title,
    )
    fig.update_traces(hoverinfo="skip", hovertemplate=None, selector={"type": "heatmap"})
    rows, cols = np.divmod(np.arange(z.size), len(xs))
    fig.add_trace(
        go.Scatter(
            x=[xs[j] for j in cols],
            y=[ys[i] for i in rows],
            customdata=[[ys[i], xs[j], z[i, j]] for i, j in zip(rows, cols, strict=True)],
            mode="markers",
            marker={"size": 24, "color": "rgba(0,0,0,0)"},
            hovertemplate=hover + ": %{customdata[2]:.3f}<extra></extra>",
            name="cells",
            showlegend=False,
        )
    )
    if cell is not None:
        i, j = ys.index(cell[0]), xs.index(cell[1])
        fig.add_shape(
            type="rect",
            x0=j - 0.5,
            x1=j + 0.5,
            y0=i - 0.5,
            y1=i + 0.5,
            line={"color": "red", "width": 3},
        )
    fig.update_xaxes(title=axes[0], type="category")
    fig.update_yaxes(title=axes[1], type="category")
    fig.update_layout(hoverdistance=-1)
    return fig


def plain_numbers(comparisons: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A pair's comparisons (`pair_comparisons`: measure -> comparison) as plain values, to
    cache: per measure its similarity, canonical correlations (a list, None outside the CCA
    family) and details."""
    return {
        m: {
            "similarity": c.similarity,
            "correlations": None if c.correlations is None else c.correlations.tolist(),
            "details": c.details,
        }
        for m, c in comparisons.items()
    }


def pair_table(numbers: dict[str, dict[str, Any]], measure: str) -> pd.DataFrame:
    """One row per measure of a pair's numbers (`pair_comparisons`, as plain values): its
    similarity, whether the map shows it, SVCCA's kept directions and the layers' ranks."""
    return pd.DataFrame(
        [
            {
                "measure": m,
                "similarity": n["similarity"],
                "in the map": "yes" if m == measure else "",
                "directions": "x".join(str(k) for k in n["details"].get("kept", [])),
                "rank": "x".join(str(r) for r in n["details"].get("rank", [])),
            }
            for m, n in numbers.items()
        ]
    )


def spectra_figure(numbers: dict[str, dict[str, Any]]) -> go.Figure | None:
    """The canonical correlations of SVCCA and CCA over their directions (descending); None
    when neither has any."""
    spectra = [
        {"measure": m, "direction": k + 1, "correlation": rho}
        for m in ("svcca", "cca")
        for k, rho in enumerate(numbers[m]["correlations"] or [])
    ]
    if not spectra:
        return None
    fig = px.line(
        pd.DataFrame(spectra),
        x="direction",
        y="correlation",
        color="measure",
        markers=True,
        title="Canonical correlations of the pair (descending)",
    )
    fig.update_yaxes(range=[0, 1.02])
    return fig


def convergence_figure(conv: dict[str, Any], measure: str) -> go.Figure:
    """A checkpoint map's rows as lines over training steps (log; step 0 not drawn), a line
    per site."""
    lines = [
        {"step": s, "site": site, measure: conv["matrix"][i][j]}
        for i, s in enumerate(conv["steps"])
        for j, site in enumerate(conv["sites"])
    ]
    return px.line(
        lines,
        x="step",
        y=measure,
        color="site",
        markers=True,
        log_x=True,
        title="Similarity to the final state over training (log step; step 0 not shown)",
    )


def explore_link(store: str, site: str, compare: str | None = None) -> str:
    """The Explore page at `site` of `store` (beside store `compare`, if given)."""
    return page_link("Explore", store=store, site=site, **({"compare": compare} if compare else {}))


def layer_links(store: str, cell: Cell) -> Links:
    """Explore at both sites of a layer x layer cell."""
    return [(f"Explore `{site}` of `{store}`", explore_link(store, site)) for site in cell]


def checkpoint_links(
    store: str, step: int, site: str, reference: str, reference_step: int
) -> Links:
    """Explore at `site` of a checkpoint's store, of the reference checkpoint's, and both."""
    return [
        (f"Explore `{site}` at step {step}", explore_link(store, site)),
        (f"Explore `{site}` at step {reference_step}", explore_link(reference, site)),
        ("Both side by side", explore_link(store, site, compare=reference)),
    ]


def cross_links(a: str, b: str, cell: Cell) -> Links:
    """Explore at a model x model cell's site of each store, and both side by side when the
    sites are the same."""
    links = [
        (f"Explore `{cell[0]}` of `{a}`", explore_link(a, cell[0])),
        (f"Explore `{cell[1]}` of `{b}`", explore_link(b, cell[1])),
    ]
    if cell[0] == cell[1]:
        links.append(("Both side by side", explore_link(a, cell[0], compare=b)))
    return links


def rows_key(entry: Mapping[str, Any]) -> tuple:
    """What fixes the rows of a store (a `stores_by_path` entry): its row count and its
    `SAME_ROWS` capture settings (dataset, examples, length, positions). Two stores with equal
    keys hold the same rows, so model x model compares them row by row."""
    spec = entry.get("spec") or {}
    return (entry.get("n_rows"), *(str(spec.get(k)) for k in SAME_ROWS))


def cross_pair(
    ranked: Sequence[str], stores: Mapping[str, Mapping[str, Any]], a: str | None = None
) -> tuple[str, str]:
    """The stores the model x model map opens on, among `ranked` (the keys of `stores`, richest
    first: `richest_first`). Store A: `a` when given, else the richest store whose rows another
    store holds too (`rows_key`), else the richest. Store B: the richest other store holding
    A's rows, else the richest other store (A itself when it is the only one)."""
    rows = {name: rows_key(stores[name]) for name in ranked}
    shared = Counter(rows.values())
    if a is None:
        a = next((name for name in ranked if shared[rows[name]] > 1), ranked[0])
    others = [name for name in ranked if name != a]
    same = [name for name in others if rows[name] == rows.get(a)]
    return a, (same or others or [a])[0]


def cross_default(
    root: Path, stores: Mapping[str, Mapping[str, Any]], a: str | None = None
) -> tuple[str, str]:
    """The model x model pair without one in the URL: the richest two of `stores` (runs
    directory `root`) holding the same rows (`cross_pair`); B's default follows A when the URL
    names it."""
    return cross_pair(richest_first(root, stores), stores, a)
