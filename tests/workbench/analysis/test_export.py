"""Exports: figures as self-contained offline HTML, tables as CSV / parquet bytes that read back
equal, safe file names, the static-page pieces (document shell, SVG bars) escaping their text."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from workbench.analysis.export import (
    figure_html,
    file_name,
    html_document,
    png_config,
    safe_name,
    svg_bars,
    table_bytes,
    write_text,
)
from workbench.errors import InputError


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        (
            "Most used codes at blocks.1.hook_resid_post",
            "Most_used_codes_at_blocks.1.hook_resid_post",
        ),
        ("latent 3 <script>", "latent_3_script"),
        ("../../etc/passwd", "etc_passwd"),
        ("a/b\\c:d", "a_b_c_d"),
        ("", "export"),
        (" ... ", "export"),
        ("ünï cödé", "n_c_d"),
        ("a..b", "a.b"),  # no `..` anywhere, not only at the start
        ("v1...2 / ..", "v1.2"),
    ],
)
def test_safe_name(name, stem):
    assert safe_name(name) == stem


@pytest.mark.parametrize("name", ["../..", "..", " /// ", "ïü"])
def test_safe_name_without_a_default_refuses_a_name_with_nothing_usable(name):
    assert safe_name(name) == "export"
    assert safe_name(name, default="latent") == "latent"
    with pytest.raises(InputError, match="no usable characters.*letters, digits"):
        safe_name(name, default=None)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "a/../../b", "..\\..\\x", "." * 300, "x" * 300]
)
def test_safe_name_never_holds_a_separator_a_parent_or_a_hidden_name(name):
    stem = safe_name(name, max_length=50)
    assert "/" not in stem and "\\" not in stem and ".." not in stem
    assert not stem.startswith(".") and 0 < len(stem) <= 50


def test_safe_name_length_and_file_name():
    assert len(safe_name("x" * 500)) == 100
    assert file_name("feature density", "csv") == "feature_density.csv"
    assert file_name("feature density", ".html") == "feature_density.html"
    assert png_config("feature density")["toImageButtonOptions"] == {
        "format": "png",
        "filename": "feature_density",
        "scale": 2,
    }


@pytest.fixture(scope="module")
def bar_html() -> str:
    fig = go.Figure(go.Bar(x=["alpha-bar", "beta-bar"], y=[3.25, 4.5]))
    fig.update_layout(title="Density <of> latents")
    return figure_html(fig)


def test_figure_html_is_self_contained(bar_html):
    # the figure's data, its title (escaped in <title>) and the PNG file name are in the page
    assert '"x":["alpha-bar","beta-bar"]' in bar_html and '"y":[3.25,4.5]' in bar_html
    assert "<title>Density &lt;of&gt; latents</title>" in bar_html
    assert '"filename": "Density_of_latents"' in bar_html
    # plotly.js itself is inlined, and no script comes from anywhere else (no CDN, no file)
    assert get_plotlyjs()[:2000] in bar_html
    assert len(bar_html) > 1_000_000
    assert not re.search(r"<script[^>]*\bsrc\s*=", bar_html)


def test_figure_html_name_overrides_title():
    page = figure_html(go.Figure(go.Scatter(y=[1, 2])), "my chart")
    assert "<title>my chart</title>" in page and '"filename": "my_chart"' in page
    untitled = figure_html(go.Figure(go.Scatter(y=[1, 2])))
    assert "<title>figure</title>" in untitled


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site": ["blocks.0", "blocks.1", "blocks.2"],
            "n_tokens": np.array([10, 20, 30], dtype=np.int64),
            "entropy": [0.5, np.nan, 1.25],
            "dead": [True, False, True],
            "token": ["<script>", "a,b", 'say "hi"'],
        }
    )


def test_parquet_round_trips(frame):
    data = table_bytes(frame, "parquet")
    assert data[:4] == b"PAR1"
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(data)), frame)
    indexed = frame.set_index("site")
    back = pd.read_parquet(io.BytesIO(table_bytes(indexed, "parquet")))
    pd.testing.assert_frame_equal(back, indexed)


def test_csv_round_trips(frame):
    back = pd.read_csv(io.BytesIO(table_bytes(frame, "csv")))
    pd.testing.assert_frame_equal(back, frame)
    assert table_bytes(frame, "csv").splitlines()[0] == b"site,n_tokens,entropy,dead,token"
    # a meaningful index is kept, a plain range is not
    indexed = frame.set_index("site")
    back = pd.read_csv(io.BytesIO(table_bytes(indexed, "csv")), index_col="site")
    pd.testing.assert_frame_equal(back, indexed)


def test_parquet_of_awkward_frames():
    # int column names (a transposed table) and a mixed-type object column still export
    wide = pd.DataFrame({0: [1.0, 2.0], 1: [3.0, 4.0]}, index=pd.Index(["a", "b"], name="row"))
    back = pd.read_parquet(io.BytesIO(table_bytes(wide, "parquet")))
    assert list(back.columns) == ["0", "1"] and back.loc["b", "1"] == 4.0
    mixed = pd.DataFrame({"value": [1, "two", 3.5]})
    back = pd.read_parquet(io.BytesIO(table_bytes(mixed, "parquet")))
    assert back["value"].tolist() == ["1", "two", "3.5"]
    series = pd.Series([1, 2], name="n")
    assert pd.read_parquet(io.BytesIO(table_bytes(series, "parquet")))["n"].tolist() == [1, 2]


def test_bad_table_format_names_the_valid_ones(frame):
    with pytest.raises(InputError, match=r"'xlsx'.*csv, parquet"):
        table_bytes(frame, "xlsx")


def test_html_document_and_svg_bars_escape(tmp_path):
    page = html_document("Latent <3>", "<p>body</p>")
    assert page.startswith("<!doctype html>") and "<title>Latent &lt;3&gt;</title>" in page
    assert "<p>body</p>" in page and "http" not in page  # no external resource
    svg = svg_bars([1, 4, 2], ["<a>", "b", "c"], ("0", "9"), "rows")
    assert svg.count("<rect") == 3 and "<title>&lt;a&gt;</title>" in svg
    assert 'height="120.0"' in svg  # the tallest bar fills the chart
    with pytest.raises(InputError, match="3 bar heights but 2 tooltips"):
        svg_bars([1, 2, 3], ["a", "b"])
    path = write_text("é", tmp_path / "a" / "b.html")
    assert path.read_text(encoding="utf-8") == "é"
