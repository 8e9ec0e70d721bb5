"""Export buttons for the web app's pages (imported by `app/`, never by the library).

    from workbench_app.lib.exports import show_figure, show_table, download_html

    event = show_figure(fig, "density of latents", key="density", on_select="rerun")
    show_table(frame, "best latent per label", hide_index=True)
    download_html("Feature as HTML page", lambda: page_html(...), "latent 3")

`show_figure` draws `st.plotly_chart` whose toolbar's PNG button saves `<name>.png` (drawn by
the browser: no kaleido on the server, see `workbench.analysis.export`) and, under it, a small "HTML"
button (the figure as a self-contained, offline HTML file). `show_table` draws `st.dataframe`
(or `st.table` with `static=True`) and small "CSV" and "Parquet" buttons. Both return what the
Streamlit call returns, so selections still work.

The files are made only when a button is clicked (a callable `data`, Streamlit >= 1.52), so a
big figure is not serialised on every rerun; older Streamlit makes them on each run. Clicking
does not rerun the page (`on_click="ignore"`).

Keys: the buttons' widget keys come from `key` if given, else from `name`, so two exports of
the same name on one page need different `key`s (they would also download to the same file).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import streamlit as st

from workbench.analysis.export import (
    MIME,
    figure_html,
    file_name,
    png_config,
    safe_name,
    table_bytes,
)

LAZY_DOWNLOADS = tuple(int(p) for p in st.__version__.split(".")[:2]) >= (1, 52)
"""Whether `st.download_button` takes a callable `data`, made only when clicked."""

Maker = Callable[[], str | bytes]


def _target(container: Any) -> Any:
    return st if container is None else container


def _button(target: Any, label: str, make: Maker, name: str, ext: str, key: str, tip: str) -> None:
    target.download_button(
        label,
        make if LAZY_DOWNLOADS else make(),
        file_name=file_name(name, ext),
        mime=MIME[ext],
        key=key,
        help=tip,
        on_click="ignore",
        type="tertiary",
        icon=":material/download:",
    )


def _row(container: Any) -> Any:
    """A right-aligned horizontal row for compact buttons."""
    return _target(container).container(horizontal=True, horizontal_alignment="right", gap="small")


def show_figure(
    fig: Any,
    name: str,
    key: str | None = None,
    *,
    container: Any = None,
    **plotly_chart_kwargs: Any,
) -> Any:
    """`st.plotly_chart(fig, key=key, **plotly_chart_kwargs)` in `container` (a column, ...; the
    current one if None) whose toolbar PNG saves `<name>.png`, then an "HTML" download button
    of the figure. A `config` among the kwargs is kept (its own `toImageButtonOptions` win).
    Returns what `st.plotly_chart` returns (the selection state with `on_select`)."""
    config = {**png_config(name), **(plotly_chart_kwargs.pop("config", None) or {})}
    out = _target(container).plotly_chart(fig, key=key, config=config, **plotly_chart_kwargs)
    _button(
        _row(container),
        "HTML",
        lambda: figure_html(fig, name),
        name,
        "html",
        f"export-{key or safe_name(name)}-html",
        "This chart as an interactive HTML file that works offline. For a PNG, use the camera "
        "icon in the chart's toolbar.",
    )
    return out


def table_downloads(df: Any, name: str, key: str | None = None, *, container: Any = None) -> None:
    """Small "CSV" and "Parquet" download buttons of table `df` (files `<name>.csv|parquet`)."""
    row = _row(container)
    stem = key or safe_name(name)
    for label, fmt in (("CSV", "csv"), ("Parquet", "parquet")):
        _button(
            row,
            label,
            partial(table_bytes, df, fmt),
            name,
            fmt,
            f"export-{stem}-{fmt}",
            f"This table as a {label} file.",
        )


def show_table(
    df: Any,
    name: str,
    key: str | None = None,
    *,
    container: Any = None,
    static: bool = False,
    **dataframe_kwargs: Any,
) -> Any:
    """`st.dataframe(df, key=key, **dataframe_kwargs)` (or `st.table(df, **dataframe_kwargs)`
    when `static`: all cells as text, no key) in `container`, then `table_downloads`. Returns
    what the Streamlit call returns (the selection state with `on_select`)."""
    target = _target(container)
    if static:
        out = target.table(df, **dataframe_kwargs)
    else:
        out = target.dataframe(df, key=key, **dataframe_kwargs)
    table_downloads(df, name, key, container=container)
    return out


def download_html(
    label: str, make: Callable[[], str], name: str, *, key: str | None = None, container: Any = None
) -> None:
    """A download button `label` of the HTML page `make()`, saved as `<name>.html`. `make` is
    called only on click where Streamlit allows, after the page's script has run and on another
    thread: bind what it reads (`functools.partial`) unless the script never reassigns it."""
    _target(container).download_button(
        label,
        make if LAZY_DOWNLOADS else make(),
        file_name=file_name(name, "html"),
        mime=MIME["html"],
        key=key or f"export-{safe_name(name)}-page",
        on_click="ignore",
        icon=":material/download:",
    )
