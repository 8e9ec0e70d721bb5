"""A model's headline metrics per layer, gathered from what a runs directory already holds: saved
results (`results/<analysis>/<store>/<site>/`, as `workbench demo` and `analyze --out` write
them) and batch results over checkpoints (`results.parquet` of `workbench batch`). Nothing is
computed here; the app's Overview page draws these frames.

For one site, `layer_panel` gathers where to drill in: links to every page at that site (with
each page's URL parameters), the SAE feature reports on that site (`features.json`, as
`workbench sae features` writes them) with their best-matching latents, and the saved codebook
models with a codebook at that site (`codebook.json`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from workbench.sites import layer_index

#: (analysis, headline key) -> column name of the overview table
HEADLINES = {
    ("twonn", "dimension"): "TwoNN dim",
    ("mle", "dimension"): "MLE dim",
    ("pca-dim", "participation_ratio"): "PCA PR",
    ("anisotropy", "anisotropy"): "anisotropy",
    ("effective-rank", "effective_rank"): "effective rank",
    ("massive", "max_row_ratio"): "max |a| / median",
    ("probe", "accuracy"): "probe accuracy",
    ("neural-collapse", "nc1"): "NC1",
}
#: metrics of a batch frame drawn as sparklines over checkpoints, by (analysis, metric)
CURVES = {
    ("twonn", "dimension"): "TwoNN (training)",
    ("anisotropy", "anisotropy"): "aniso. (training)",
    ("effective-rank", "effective_rank"): "eff. rank (training)",
    ("massive", "max_row_ratio"): "max ratio (training)",
    ("probe", "accuracy"): "probe (training)",
    ("neural-collapse", "nc1"): "NC1 (training)",
}


def result_stores(root: Path) -> list[str]:
    """Names of the stores that have per-site results of a `HEADLINES` analysis under
    `root/results/<analysis>/<store>/<site>/`."""
    names = {analysis for analysis, _key in HEADLINES}
    return sorted(
        {
            p.parent.parent.name
            for p in (root / "results").glob("*/*/*/result.json")
            if p.parent.parent.parent.name in names
        }
    )


def site_headlines(root: Path, store: str) -> pd.DataFrame:
    """One row per site of `store` (in layer order) with the headline numbers of its saved
    results; columns named by `HEADLINES`, missing where no such result was saved."""
    rows: dict[str, dict[str, float]] = {}
    for (analysis, key), column in HEADLINES.items():
        for meta_path in sorted((root / "results" / analysis / store).glob("*/result.json")):
            try:
                headline = json.loads(meta_path.read_text()).get("headline", {})
            except (OSError, ValueError):
                continue
            value = headline.get(key)
            if isinstance(value, (int, float)):
                rows.setdefault(meta_path.parent.name, {})[column] = float(value)
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
    """Per site of `model`: each `CURVES` metric over checkpoint steps, from every batch under
    `root`; one row per site with a list of values (in step order) per curve, and `steps`."""
    frames = []
    for folder in batch_folders(root):
        frame = pd.read_parquet(folder / "results.parquet")
        if {"model", "step", "site", "analysis", "metric", "value"} <= set(frame.columns):
            frames.append(frame[frame["model"] == model])
    if not frames:
        return pd.DataFrame(columns=["site"])
    frame = pd.concat(frames, ignore_index=True).dropna(subset=["step"])
    out: dict[str, dict] = {}
    for (analysis, metric), column in CURVES.items():
        rows = frame[(frame["analysis"] == analysis) & (frame["metric"] == metric)]
        for site, group in rows.groupby("site"):
            means = group.groupby("step")["value"].mean().sort_index()
            entry = out.setdefault(str(site), {"site": str(site)})
            entry[column] = [float(v) for v in means]
            entry["steps"] = f"{int(means.index.min())}..{int(means.index.max())} ({len(means)})"
    return pd.DataFrame(list(out.values()))


def page_link(page: str, **params: Any) -> str:
    """A relative link to an app page with URL parameters (slashes and commas kept readable)."""
    return f"{page}?{urlencode(params, safe='/,')}"


def _model_name(root: Path, store: str) -> str:
    """The model name (without `@step`) of `root/stores/<store>`, from its manifest; the store's
    name when it has none."""
    try:
        spec = json.loads((root / "stores" / store / "manifest.json").read_text())["spec"]
        return str(spec["model"]).partition("@")[0]
    except (OSError, ValueError, KeyError, TypeError):
        return store


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


def sae_reports_at(root: Path, store: str, site: str, top: int = 5) -> list[dict[str, Any]]:
    """The SAE feature reports under `root` on `site` of the store named `store` (the last part
    of the report's store path, which may be relative to wherever the CLI ran): per report its
    folder (relative to `root`, the SAE features page's `features` parameter), its link, and its
    `top` latents by F1 against a label value (distinct latents, best first), each with a link
    to the latent."""
    found = []
    for info_path in sorted(root.glob("**/features.json")):
        try:
            info = json.loads(info_path.read_text())
            meta = info["meta"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if meta.get("site") != site or Path(str(meta.get("store", ""))).name != store:
            continue
        report = str(info_path.parent.relative_to(root))
        latents: dict[int, dict[str, Any]] = {}
        for best in sorted(info.get("best", []), key=lambda b: -float(b.get("f1", 0.0))):
            latent = int(best["latent"])
            if latent not in latents and len(latents) < top:
                latents[latent] = {
                    "latent": latent,
                    "label": f"{best['label']}={best['value']}",
                    "f1": float(best["f1"]),
                    "url": page_link("SAE_features", features=report, latent=latent),
                }
        found.append(
            {
                "report": report,
                "sae": str(meta.get("sae", "")),
                "n_rows": info.get("n_rows"),
                "url": page_link("SAE_features", features=report),
                "latents": list(latents.values()),
            }
        )
    return found


def codebooks_at(root: Path, store: str, site: str) -> list[dict[str, Any]]:
    """The saved codebook models under `root` (folders with `codebook.json`) with a codebook at
    `site` whose base model is the model of `stores/<store>`: per model its folder (relative to
    `root`, the Codebooks page's `model` parameter), base, size, a link to the page at the site
    (which opens on the site's most used code) and `codes`: the site's most used codes from the
    training report (`top_codes`; empty for codebooks saved before it existed), each with its
    usage and a link to the page at that code."""
    model = _model_name(root, store)
    found = []
    for config_path in sorted(root.rglob("codebook.json")):
        try:
            config = json.loads(config_path.read_text())
            sites, base = list(config["sites"]), str(config.get("base") or "")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if site not in sites or base.partition("@")[0] not in (model, store):
            continue
        folder = str(config_path.parent.relative_to(root))
        top = (config.get("report") or {}).get("top_codes", {}).get(site, [])
        codes = [
            {
                "code": int(c),
                "usage": float(u),
                "url": page_link("Codebooks", model=folder, site=site, code=int(c)),
            }
            for c, u in top
        ]
        found.append(
            {
                "model": folder,
                "base": base,
                "n_codes": config.get("n_codes"),
                "k": config.get("k"),
                "url": page_link("Codebooks", model=folder, site=site),
                "codes": codes,
            }
        )
    return found


def layer_panel(root: Path, store: str, site: str, sites: Sequence[str]) -> dict[str, Any]:
    """Where to drill into `site` of `store`: `links` (`site_links`), `sae` (`sae_reports_at`),
    `codebooks` (`codebooks_at`)."""
    return {
        "links": site_links(store, site, sites),
        "sae": sae_reports_at(root, store, site),
        "codebooks": codebooks_at(root, store, site),
    }
