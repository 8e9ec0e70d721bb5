"""The app's one link scheme: a page by its URL path name (the file name without its number
prefix, as Streamlit serves it), with the view's state as URL parameters.

`page_link("Explore", store="stores/toy-lm", site="blocks.1.hook_resid_post")` is a relative
link that any page can put in markdown or a table; `page_file("Explore")` is the script path
that `st.page_link` and `st.switch_page` take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

#: URL path name -> page script, relative to the app's `Home.py`
PAGE_FILES = {
    path.stem.split("_", 1)[1]: f"pages/{path.name}"
    for path in sorted((Path(__file__).resolve().parent.parent / "pages").glob("[0-9]*_*.py"))
}


def page_file(page: str) -> str:
    """The script of page `page` (its URL path name, e.g. "SAE_features"), relative to Home.py."""
    if page not in PAGE_FILES:
        raise KeyError(f"unknown page {page!r}; valid: {', '.join(sorted(PAGE_FILES))}")
    return PAGE_FILES[page]


def page_link(page: str, **params: Any) -> str:
    """A relative link to an app page with URL parameters (slashes and commas kept readable, a
    space as `%20`: a `+` would be a plus sign to anything but a form decoder)."""
    page_file(page)  # a typo in a page name fails here, not as a dead link
    return f"{page}?{urlencode(params, safe='/,', quote_via=quote)}"


def unit_link(target: dict[str, Any]) -> str:
    """The link of a prompt view's unit to its page, from its link target
    (`workbench.analysis.prompt.PromptUnits.links`: "page", the page's URL path name, and its URL
    parameters, e.g. {"page": "SAE_features", "features": "sae/toy/features", "latent": 3})."""
    params = dict(target)
    return page_link(params.pop("page"), **params)
