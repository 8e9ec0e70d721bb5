"""The Model page's view: a prompt's residual-stream norms and logit lens as position x block
heatmaps. Pure functions (no Streamlit).

    labels = position_labels(norms)                    # "position:token" per column
    norms_figure(norms, labels), lens_figure(lens, labels)
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def position_labels(norms: pd.DataFrame) -> list[str]:
    """ "position:token" of each position of a prompt (`layer_norms`' rows of layer 0)."""
    first = norms[norms["layer"] == 0][["position", "token"]]
    return [f"{p}:{t}" for p, t in first.itertuples(index=False)]


def norms_figure(norms: pd.DataFrame, labels: list[str]) -> go.Figure:
    """The residual stream's L2 norm after each block (rows) at each position (columns)."""
    grid = norms.pivot(index="layer", columns="position", values="norm")
    return px.imshow(
        grid.values,
        x=labels,
        y=[f"block {i}" for i in grid.index],
        aspect="auto",
        color_continuous_scale="Viridis",
        labels={"color": "L2 norm"},
    )


def lens_figure(lens: pd.DataFrame, labels: list[str]) -> go.Figure:
    """The logit lens (`logit_lens`): per block and position, the probability it gives the
    token that actually comes next (colour) and its own most likely next token (text)."""
    prob = lens.pivot(index="layer", columns="position", values="next_token_prob")
    top = lens.pivot(index="layer", columns="position", values="top_token")
    fig = px.imshow(
        prob.values,
        x=labels,
        y=[f"block {i}" for i in prob.index],
        aspect="auto",
        color_continuous_scale="Blues",
        zmin=0,
        zmax=1,
        labels={"color": "p(actual next token)"},
    )
    return fig.update_traces(text=top.values, texttemplate="%{text}")
