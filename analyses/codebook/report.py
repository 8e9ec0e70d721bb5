"""What others read of the codebook family (declared in `pyproject.toml`, found through
`workbench.analysis.plugins`): `CODEBOOKS`, the saved codebook models (`codebook.json`) with a
codebook at a site, each with the site's most used codes from its training report."""

from __future__ import annotations

import json
from pathlib import Path

from analyses.codebook.model import CONFIG_NAME
from workbench.analysis.plugins import Link, Report, ReportItem, ReportKind, SiteQuery

CODEBOOKS_PAGE = "Codebooks"  # the app page that shows a codebook model


def read_codebook(path: Path, query: SiteQuery) -> Report | None:
    """The codebook model of `path` (a `codebook.json`) if it has a codebook at `query.site` and
    its base model (without `@step`) is `query.model` or `query.store`; None otherwise or if it
    cannot be read. Its items: the site's most used codes as the training report saved them
    (`top_codes`: [code, usage], usage a fraction of tokens; none for a model saved before
    the report had them), most used first; each links to the page at that code."""
    try:
        config = json.loads(path.read_text())
        sites, base = list(config["sites"]), str(config.get("base") or "")
        if query.site not in sites or base.partition("@")[0] not in (query.model, query.store):
            return None
        folder = str(path.parent.relative_to(query.root))
        top = (config.get("report") or {}).get("top_codes", {}).get(query.site, [])
        items = tuple(
            ReportItem(
                label=f"code {int(code)}",
                text=f" ({float(usage):.1%})",
                value=float(usage),
                link=Link(CODEBOOKS_PAGE, {"model": folder, "site": query.site, "code": int(code)}),
            )
            for code, usage in top
        )
        groups = int(config.get("groups", 1))
        shape = f" in {groups} groups" if groups > 1 else ""
        summary = f"{config.get('n_codes')} codes{shape}, k={config.get('k')}, base {base}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Report(
        folder=folder,
        summary=summary,
        link=Link(CODEBOOKS_PAGE, {"model": folder, "site": query.site}),
        items=items,
    )


CODEBOOKS = ReportKind(
    name="codebooks",
    file_name=CONFIG_NAME,
    title="Codebooks at this site",
    read=read_codebook,
    hint=(
        "None yet: `workbench codebook train --model MODEL --sites {site} "
        "--out RUNS/codebooks/NAME`."
    ),
    order=20,
)
