"""A model's headline metrics per layer, gathered from what a runs directory already holds: saved
results (`results/<analysis>/<store>/<site>/`, as `workbench demo` and `analyze --out` write
them) and batch results over checkpoints (`results.parquet` of `workbench batch`). Nothing is
computed here; the app's Overview page draws these frames.

Which headlines there are, and which reports a layer has, the analysis families declare
(`workbench.analysis.plugins`: entry points `workbench.headlines` and `workbench.reports`); this
module names none of them. For one site, `layer_panel` gathers where to drill in: links to every
page at that site (with each page's URL parameters) and, per report kind (an SAE's feature
report, a codebook model, ...), the reports saved at that site with their top items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.analysis.plugins import Link, Report, SiteQuery, headlines, report_kinds
from workbench.sites.names import layer_index
from workbench_app.lib.links import page_file, page_link
from workbench_app.services.runsdir import richest_first, stores_by_path


def curve_columns() -> list[str]:
    """The labels of the declared headlines drawn as curves over checkpoints (`training_curves`'
    columns besides site and steps)."""
    return [h.curve for h in headlines() if h.curve]


def result_stores(root: Path) -> list[str]:
    """Names of the stores that have per-site results of an analysis with a declared headline
    (`workbench.headlines`) under `root/results/<analysis>/<store>/<site>/`."""
    names = {h.analysis for h in headlines()}
    return sorted(
        {
            p.parent.parent.name
            for p in (root / "results").glob("*/*/*/result.json")
            if p.parent.parent.parent.name in names
        }
    )


def richest_result_store(root: Path, names: Sequence[str]) -> str:
    """The richest of the store names `names` (`result_stores`), the Overview's default:
    `richest_first` over their stores `stores/<name>` (a name whose store is gone ranks by its
    saved results alone)."""
    found = stores_by_path(root)
    stores = {f"stores/{name}": found.get(f"stores/{name}", {}) for name in names}
    return richest_first(root, stores)[0].removeprefix("stores/")


def site_headlines(root: Path, store: str) -> pd.DataFrame:
    """One row per site of `store` (in layer order) with the headline numbers of its saved
    results; a column per declared headline (its `column`, in declaration order), missing where
    no such result was saved."""
    rows: dict[str, dict[str, float]] = {}
    for h in headlines():
        for meta_path in sorted((root / "results" / h.analysis / store).glob("*/result.json")):
            try:
                headline = json.loads(meta_path.read_text()).get("headline", {})
            except (OSError, ValueError):
                continue
            value = headline.get(h.key)
            if isinstance(value, (int, float)):
                rows.setdefault(meta_path.parent.name, {})[h.column] = float(value)
    if not rows:
        return pd.DataFrame(columns=["site", "layer"])
    frame = pd.DataFrame([{"site": site, **values} for site, values in rows.items()])
    frame.insert(1, "layer", [layer_index(s) for s in frame["site"]])
    return frame.sort_values(["layer", "site"], na_position="first", kind="stable").reset_index(
        drop=True
    )


def batch_folders(root: Path, max_depth: int = 4) -> list[Path]:
    """Batch result folders (plan.json beside results.parquet) under `root`, at most `max_depth`
    folders deep; searched level by level, so no store's chunk files are walked."""
    plans = [
        p for d in range(max_depth + 1) for p in root.glob("/".join(["*"] * d + ["plan.json"]))
    ]
    return [p.parent for p in sorted(plans) if (p.parent / "results.parquet").is_file()]


def training_curves(root: Path, model: str) -> pd.DataFrame:
    """Per site of `model`: each declared headline with a curve, over checkpoint steps, from every
    batch under `root`; one row per site with a list of values (in step order) per curve
    (labelled by its `curve`), and `steps`."""
    frames = []
    for folder in batch_folders(root):
        frame = pd.read_parquet(folder / "results.parquet")
        if {"model", "step", "site", "analysis", "metric", "value"} <= set(frame.columns):
            frames.append(frame[frame["model"] == model])
    if not frames:
        return pd.DataFrame(columns=["site"])
    frame = pd.concat(frames, ignore_index=True).dropna(subset=["step"])
    out: dict[str, dict] = {}
    for h in (h for h in headlines() if h.curve):
        rows = frame[(frame["analysis"] == h.analysis) & (frame["metric"] == h.key)]
        for site, group in rows.groupby("site"):
            means = group.groupby("step")["value"].mean().sort_index()
            entry = out.setdefault(str(site), {"site": str(site)})
            entry[h.curve] = [float(v) for v in means]
            entry["steps"] = f"{int(means.index.min())}..{int(means.index.max())} ({len(means)})"
    return pd.DataFrame(list(out.values()))


def _model_name(root: Path, store: str) -> str:
    """The model name (without `@step`) of `root/stores/<store>`, from its manifest; the store's
    name when it has none."""
    try:
        spec = json.loads((root / "stores" / store / "manifest.json").read_text())["spec"]
        return str(spec["model"]).partition("@")[0]
    except (OSError, ValueError, KeyError, TypeError):
        return store


def store_links(store: str) -> list[dict[str, str]]:
    """Links (page, url, what) to the pages that show the store `stores/<store>` as a whole, and
    to the pages of what was made from it."""
    path = f"stores/{store}"
    return [
        {
            "page": "Geometry",
            "url": page_link("Geometry", store=path),
            "what": "intrinsic dimension, anisotropy, rank per site",
        },
        {
            "page": "Massive",
            "url": page_link("Massive", store=path),
            "what": "the largest activations, their dims and tokens",
        },
        {
            "page": "Similarity",
            "url": page_link("Similarity", store=path),
            "what": "layer x layer similarity",
        },
        {
            "page": "Explore",
            "url": page_link("Explore", store=path),
            "what": "a map of one layer's rows; select to contrast",
        },
        {
            "page": "SAE features",
            "url": _bare("SAE_features"),
            "what": "features of the SAEs trained on this run's stores",
        },
        {
            "page": "Batch",
            "url": _bare("Batch"),
            "what": "every metric over checkpoints, as heatmaps",
        },
    ]


def _bare(page: str) -> str:
    """A link to `page` without URL parameters (its name checked)."""
    page_file(page)
    return page


def site_links(store: str, site: str, sites: Sequence[str]) -> list[dict[str, str]]:
    """Links (page, url, what) to every page that shows `site` of the store `stores/<store>`.
    Similarity opens on the cell of `site` against its next site in `sites` (depth order; the
    previous one for the last site)."""
    path = f"stores/{store}"
    order = list(sites)
    i = order.index(site) if site in order else -1
    partner = order[i + 1] if 0 <= i < len(order) - 1 else order[i - 1] if i > 0 else site
    return [
        {
            "page": "Geometry",
            "url": page_link("Geometry", store=path, site=site),
            "what": "intrinsic dimension, anisotropy, rank through depth, this site marked",
        },
        {
            "page": "Explore",
            "url": page_link("Explore", store=path, site=site),
            "what": "a map of this site's rows; select points to contrast them",
        },
        {
            "page": "Massive",
            "url": page_link("Massive", store=path, site=site),
            "what": "the largest activations at this site, their dims and tokens",
        },
        {
            "page": "Similarity",
            "url": page_link("Similarity", store=path, cell=f"{site},{partner}"),
            "what": f"this site vs `{partner}` under every similarity measure",
        },
    ]


def site_reports(root: Path, store: str, site: str) -> list[dict[str, Any]]:
    """Per declared report kind (`workbench.reports`, in order): its `title`, the `hint` shown
    when it has none, and `reports`: every report of that kind under `root` at `site` of the
    store named `store`, with its folder (relative to `root`), summary, link and top items
    (label, text, value, url)."""
    query = SiteQuery(root, store, _model_name(root, store), site)
    return [
        {
            "kind": kind.name,
            "title": kind.title,
            "hint": kind.hint.format(store=store, site=site),
            "reports": [_report(report) for report in kind.reports_at(query)],
        }
        for kind in report_kinds().values()
    ]


def _report(report: Report) -> dict[str, Any]:
    return {
        "folder": report.folder,
        "summary": report.summary,
        "url": _url(report.link),
        "items": [
            {"label": item.label, "text": item.text, "value": item.value, "url": _url(item.link)}
            for item in report.items
        ],
    }


def _url(link: Link) -> str:
    return page_link(link.page, **link.params)


def layer_panel(root: Path, store: str, site: str, sites: Sequence[str]) -> dict[str, Any]:
    """Where to drill into `site` of `store`: `links` (`site_links`) and `reports`
    (`site_reports`)."""
    return {"links": site_links(store, site, sites), "reports": site_reports(root, store, site)}
