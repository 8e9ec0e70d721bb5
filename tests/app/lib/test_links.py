"""`workbench_app.lib.links`: every page's URL path name maps to its script, links carry their
parameters readably and decode back to them, and a page name that does not exist fails early."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from workbench_app.lib.links import PAGE_FILES, page_file, page_link

PAGES = Path(__file__).resolve().parents[3] / "app" / "pages"


def test_every_numbered_page_is_known_by_its_url_name():
    scripts = sorted(p.name for p in PAGES.glob("[0-9]*_*.py"))
    assert sorted(Path(f).name for f in PAGE_FILES.values()) == scripts
    assert page_file("Explore") == "pages/12_Explore.py"
    assert page_file("SAE_features") == "pages/7_SAE_features.py"


def test_links_keep_slashes_and_commas_readable_and_decode_back():
    link = page_link("Similarity", store="stores/toy-lm", cell="blocks.0.x,blocks.1.x")
    assert link == "Similarity?store=stores/toy-lm&cell=blocks.0.x,blocks.1.x"
    params = {"direction": "saved: vectors/a b&c=d.safetensors", "coeff": 2.5}
    link = page_link("Steering", **params)
    assert " " not in link and "+" not in link  # a space as %20, never a plus
    assert urlsplit(link).path == "Steering"
    assert parse_qs(urlsplit(link).query) == {k: [str(v)] for k, v in params.items()}


def test_an_unknown_page_is_refused_with_the_valid_names():
    with pytest.raises(KeyError, match="unknown page 'Explorer'.*Explore"):
        page_link("Explorer", store="x")
