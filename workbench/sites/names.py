"""Sites: canonical, parseable names of places in the forward pass, and patterns over them.

Names are TransformerLens hook names on transformers (`blocks.3.hook_resid_post`) and module
paths on plain modules (`layers.2`, `fc1`). Pattern syntax, per dotted component:
`*` matches one component or part of one (never a dot), `**` matches anything (dots included),
`?` one character. Several patterns may be joined with commas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from workbench.errors import UnknownSiteError, closest

_WILDCARDS = re.compile(r"\*\*|\*|\?")


def is_pattern(text: str) -> bool:
    return bool(_WILDCARDS.search(text))


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Compile a site pattern to an anchored regex."""
    out: list[str] = []
    pos = 0
    for match in _WILDCARDS.finditer(pattern):
        out.append(re.escape(pattern[pos : match.start()]))
        out.append({"**": ".*", "*": r"[^.]*", "?": r"[^.]"}[match.group()])
        pos = match.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "$")


def split_patterns(patterns: str | Sequence[str]) -> list[str]:
    """`"a,b"` or `["a", "b,c"]` -> `["a", "b", "c"]` (whitespace stripped, empties dropped)."""
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def expand_sites(available: Iterable[str], patterns: str | Sequence[str]) -> list[str]:
    """Expand names and patterns against the available sites, keeping model order.

    Raises UnknownSiteError, listing the closest valid names, for a name that does not exist or
    a pattern that matches nothing.
    """
    names = list(available)
    known = set(names)
    wanted: set[str] = set()
    requested = split_patterns(patterns)
    if not requested:
        raise UnknownSiteError(
            "no sites given; pass a site name or a pattern such as 'blocks.*.hook_resid_post'"
        )
    for item in requested:
        if not is_pattern(item):
            if item not in known:
                raise UnknownSiteError(
                    f"unknown site {item!r}; closest valid names: {', '.join(closest(item, names))}"
                )
            wanted.add(item)
            continue
        regex = pattern_regex(item)
        matched = [n for n in names if regex.match(n)]
        if not matched:
            near = closest(item.replace("*", "0").replace("?", "0"), names)
            raise UnknownSiteError(
                f"site pattern {item!r} matches no site; closest valid names: {', '.join(near)}"
            )
        wanted.update(matched)
    return [n for n in names if n in wanted]


def layer_index(site: str) -> int | None:
    """The block/layer number in a site name (`blocks.3.hook_resid_post` -> 3), if any."""
    match = re.search(r"(?:^|\.)(\d+)(?:\.|$)", site)
    return int(match.group(1)) if match else None
