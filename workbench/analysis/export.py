"""Exports: a plotly figure as a self-contained HTML file, a table as CSV or parquet bytes, safe
file names, and the pieces of a static HTML page (document shell, inline SVG bar chart) that the
analyses' one-feature pages are built from. No Streamlit here: the app's buttons live in
`workbench_app.lib.exports`, the CLI writes these same bytes.

PNG: a static PNG needs kaleido (and a headless Chromium) on the server, which the workbench does
not depend on. Every chart's own plotly toolbar already has "Download plot as a png", drawn in the
user's browser; `png_config` gives it a meaningful file name (`toImageButtonOptions`) and a 2x
scale, and `figure_html` keeps that button working inside the saved HTML, offline.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.errors import InputError

TABLE_FORMATS = ("csv", "parquet")
MIME = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "html": "text/html",
}
PNG_SCALE = 2  # the toolbar's PNG at twice the on-screen size: sharp in slides and papers


def safe_name(name: str, max_length: int = 100, default: str | None = "export") -> str:
    """One file name made of `name`, the only sanitiser of names that become files (exports,
    the app's uploads, the CLI): letters, digits, `.`, `_` and `-` kept, every other run of
    characters (spaces, slashes, `<`, ...) one `_`, every run of dots one `.`; no leading or
    trailing `.`, `_` or `-` (no hidden files, no `..`), at most `max_length` characters. So it
    never holds a path separator nor names a parent folder. When nothing is left: `default`,
    or with `default=None` an InputError naming `name` and the valid characters."""
    kept = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)))
    stem = kept.strip("._-")[:max_length].rstrip("._-")
    if stem:
        return stem
    if default is None:
        raise InputError(
            f"name {name!r} has no usable characters; use letters, digits, '.', '_' or '-'"
        )
    return default


def file_name(name: str, extension: str) -> str:
    """`safe_name(name)` + "." + `extension` (e.g. "density_of_latents.csv")."""
    return f"{safe_name(name)}.{extension.lstrip('.')}"


def png_config(name: str) -> dict[str, Any]:
    """Plotly config whose toolbar "Download plot as a png" saves `safe_name(name).png`."""
    return {
        "toImageButtonOptions": {"format": "png", "filename": safe_name(name), "scale": PNG_SCALE}
    }


def figure_html(fig: Any, name: str | None = None) -> str:
    """A self-contained HTML page of plotly figure `fig`: plotly.js is embedded inline
    (`include_plotlyjs=True`, about 4.6 MiB, never a CDN `<script src>`), so it opens offline and
    stays interactive, its toolbar's PNG button included. `name`: the page title and the PNG's
    file name (default: the figure's title, else "figure")."""
    import plotly.io as pio

    title = name or _figure_title(fig) or "figure"
    page = pio.to_html(fig, config=png_config(title), include_plotlyjs=True, full_html=True)
    return page.replace("<head>", f"<head>\n    <title>{html.escape(title)}</title>", 1)


def _figure_title(fig: Any) -> str | None:
    text = getattr(getattr(getattr(fig, "layout", None), "title", None), "text", None)
    return str(text) if text else None


def _parquet_ready(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with string column names (parquet requires them; MultiIndex levels joined by " / ")."""
    if all(isinstance(c, str) for c in df.columns):
        return df
    out = df.copy()
    out.columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in df.columns]
    return out


def table_bytes(df: pd.DataFrame | pd.Series, fmt: str) -> bytes:
    """`df` as the bytes of a `fmt` file: "csv" (UTF-8, header row) or "parquet" (pyarrow, dtypes
    kept). The index is written only when it carries information (not a plain 0..n-1 range)."""
    if fmt not in TABLE_FORMATS:
        raise InputError(f"unknown table format {fmt!r}; valid formats: {', '.join(TABLE_FORMATS)}")
    if isinstance(df, pd.Series):
        df = df.to_frame()
    keep_index = not isinstance(df.index, pd.RangeIndex)
    if fmt == "csv":
        return df.to_csv(index=keep_index).encode("utf-8")
    import pyarrow as pa

    frame = _parquet_ready(df)
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=keep_index)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # object columns of mixed types (ints and strings, tuples...): written as their text
        mixed = frame.select_dtypes(include="object").columns
        frame = frame.astype(dict.fromkeys(mixed, str))
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=keep_index)
    return buffer.getvalue()


def html_document(title: str, body: str, style: str = "") -> str:
    """A complete HTML page: `title` (escaped here), `body` (HTML, escaped by the caller) and
    extra CSS `style`; no external resources."""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:62em;margin:2em auto;padding:0 1em;"
        "color:#222}h1{margin-bottom:.2em}.meta{color:#555}table{border-collapse:collapse}"
        "td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}"
        f"{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def svg_bars(
    heights: Sequence[float],
    tips: Sequence[str],
    x_range: tuple[str, str] = ("", ""),
    y_label: str = "",
    bar_width: int = 12,
    height: int = 120,
    color: str = "#e67e22",
) -> str:
    """An inline SVG bar chart: one bar per entry of `heights` (scaled to the tallest), each
    with a hover tooltip from `tips` (escaped here); `x_range` texts under the first and last
    bar, `y_label` and the tallest bar's value on the left."""
    if len(heights) != len(tips):
        raise InputError(f"{len(heights)} bar heights but {len(tips)} tooltips")
    peak = max([float(h) for h in heights] + [0.0]) or 1.0
    left, bottom = 48, 18
    width = left + bar_width * len(heights)
    bars = "".join(
        f'<rect x="{left + i * bar_width}" y="{height * (1 - float(h) / peak):.1f}" '
        f'width="{bar_width - 1}" height="{height * float(h) / peak:.1f}" fill="{color}">'
        f"<title>{html.escape(tip)}</title></rect>"
        for i, (h, tip) in enumerate(zip(heights, tips, strict=True))
    )
    text = 'font-size="10" fill="#555"'
    axes = (
        f'<text x="{left - 4}" y="10" text-anchor="end" {text}>{peak:g}</text>'
        f'<text x="{left - 4}" y="{height / 2:.0f}" text-anchor="end" {text}>'
        f"{html.escape(y_label)}</text>"
        f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#999"/>'
        f'<text x="{left}" y="{height + 13}" {text}>{html.escape(x_range[0])}</text>'
        f'<text x="{width}" y="{height + 13}" text-anchor="end" {text}>'
        f"{html.escape(x_range[1])}</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + bottom}" '
        f'role="img">{axes}{bars}</svg>'
    )


def write_text(text: str, path: str | Path) -> Path:
    """Write `text` (UTF-8) to `path`, creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
