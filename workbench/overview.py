"""A model's headline metrics per layer, gathered from what a runs directory already holds: saved
results (`results/<analysis>/<store>/<site>/`, as `workbench demo` and `analyze --out` write
them) and batch results over checkpoints (`results.parquet` of `workbench batch`). Nothing is
computed here; the app's Overview page draws these frames.
"""

from __future__ import annotations

import json
from pathlib import Path

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
    """Batch result folders (plan.json beside results.parquet) under `root`."""
    return [
        p.parent
        for p in sorted(root.glob("**/plan.json"))
        if len(p.parent.relative_to(root).parts) <= max_depth
        and (p.parent / "results.parquet").is_file()
    ]


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
