"""What others read of the SAE family (declared in `pyproject.toml`, found through
`workbench.analysis.plugins`):

- `FEATURES`: the feature reports (`features.json`, as `workbench sae features` writes them) on a
  site, each with its best-matching latents (by F1 against a label value);
- `SAE_JOB`: the job "train an SAE on a store's site, then write its feature statistics into
  OUT/features", its fields (the architectures from `analyses.sae.registry`), its command lines
  and its progress, read from the trainer's `train_log.jsonl`.

A new architecture registered in `analyses.sae.registry` is a choice of the job at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analyses.sae.registry import ARCHITECTURES
from analyses.sae.trainer import LOG_NAME
from workbench.analysis.plugins import (
    JobField,
    JobKind,
    Link,
    Report,
    ReportItem,
    ReportKind,
    SiteQuery,
)
from workbench.errors import InputError

FEATURES_FILE = "features.json"
FEATURES_PAGE = "SAE_features"  # the app page that shows a feature report
TOP_LATENTS = 5


def read_features(path: Path, query: SiteQuery, top: int = TOP_LATENTS) -> Report | None:
    """The feature report `path` (a `features.json`) if it is on `query.site` of the store
    named `query.store` (the last part of the report's store path, which may be relative to
    wherever the CLI ran); None otherwise or if it cannot be read. Its items: the `top` distinct
    latents by F1 against a label value, best first."""
    try:
        info = json.loads(path.read_text())
        meta = info["meta"]
        if meta.get("site") != query.site or Path(str(meta.get("store", ""))).name != query.store:
            return None
        best = sorted(info.get("best", []), key=lambda b: -float(b.get("f1", 0.0)))
        folder = str(path.parent.relative_to(query.root))
        latents: dict[int, ReportItem] = {}
        for entry in best:
            latent = int(entry["latent"])
            if latent not in latents and len(latents) < top:
                f1 = float(entry["f1"])
                latents[latent] = ReportItem(
                    label=f"latent {latent}",
                    text=f": {entry['label']}={entry['value']} (F1 {f1:.2f})",
                    value=f1,
                    link=Link(FEATURES_PAGE, {"features": folder, "latent": latent}),
                )
        n_rows = info.get("n_rows")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Report(
        folder=folder,
        summary=f"{n_rows} rows",
        link=Link(FEATURES_PAGE, {"features": folder}),
        items=tuple(latents.values()),
    )


FEATURES = ReportKind(
    name="sae-features",
    file_name=FEATURES_FILE,
    title="SAE features trained here",
    read=read_features,
    hint=(
        "None yet: `workbench sae train --store RUNS/stores/{store} --site {site} "
        "--out RUNS/sae/NAME`, then `workbench sae features --sae RUNS/sae/NAME --store "
        "RUNS/stores/{store} --out RUNS/sae/NAME/features`."
    ),
    order=10,
)


def training_progress(train_log: Path) -> tuple[float, str] | None:
    """(fraction, text) from an SAE run's `train_log.jsonl`: the last step over the total of its
    last start record; None before the first step."""
    total = step = None
    for line in _head_and_tail(train_log):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn line (the trainer is writing it) or the cut head of the tail
        if "total_steps" in record:
            total = record["total_steps"]
        if "step" in record:
            step = record["step"]
    if not total or step is None:
        return None
    return min(step / total, 1.0), f"step {step}/{total}"


def _head_and_tail(path: Path, max_bytes: int = 65536) -> list[str]:
    """The first line of `path` and the lines of its last `max_bytes` (all lines if small): the
    start record and the latest steps, without reading a long log whole."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(len(first), size - max_bytes))
            rest = fh.read()
    except OSError:
        return []
    return [first.decode("utf-8", "replace"), *rest.decode("utf-8", "replace").split("\n")]


def sae_commands(values: Mapping[str, Any]) -> list[list[str]]:
    """`sae train` of `values` (store and out: paths), then `sae features` into OUT/features.
    Refuses an output folder that already holds a trained SAE."""
    store, site, out = values["store"], values["site"], Path(values["out"])
    if (out / "sae.safetensors").exists():
        raise InputError(f"out {str(out)!r} already holds a trained SAE; pick another folder")
    train = [
        "sae",
        "train",
        f"--store={store}",
        f"--site={site}",
        f"--out={out}",
        f"--arch={values['arch']}",
        f"--seed={values['seed']}",
    ]
    for name in ("k", "steps", "batch_size", "lr", "d_sae"):  # None: the CLI's default rule
        if values.get(name) is not None:
            train.append(f"--{name.replace('_', '-')}={values[name]!r}")
    if values["arch"] == "jumprelu" and values.get("l0_coeff") is not None:
        train.append(f"--l0-coeff={float(values['l0_coeff'])!r}")
    features = [
        "sae",
        "features",
        f"--sae={out}",
        f"--store={store}",
        f"--site={site}",
        f"--out={out / 'features'}",
        "--html=none",
    ]
    return [train, features]


SAE_JOB = JobKind(
    name="sae",
    label="SAE training",
    fields=(
        JobField(
            "store",
            "store",
            label="Store",
            empty="No complete store under the runs directory yet: start a capture first.",
        ),
        JobField("site", "site", label="Site", follows="store"),
        JobField("arch", "choice", "topk", choices=tuple(ARCHITECTURES), label="Architecture"),
        JobField(
            "k",
            "int",
            None,
            minimum=1,
            maximum=65536,
            optional=True,
            label="k (active latents: topk, batchtopk; 0: from the width)",
        ),
        JobField(
            "l0_coeff",
            "float",
            0.02,
            minimum=0.0,
            maximum=10.0,
            step=0.005,
            label="L0 coefficient (jumprelu)",
            help="the fraction of a row's variance a latent must explain to fire; lower: "
            "denser, more faithful",
        ),
        JobField(
            "d_sae",
            "int",
            None,
            minimum=1,
            maximum=1_048_576,
            optional=True,
            label="Latents (0: 8 x the site's width)",
        ),
        JobField(
            "steps",
            "int",
            None,
            minimum=1,
            maximum=10_000_000,
            optional=True,
            label="Steps (0: from the data, >= 2000)",
        ),
        JobField(
            "batch_size",
            "int",
            None,
            minimum=1,
            maximum=1_000_000,
            optional=True,
            label="Batch size (0: from the rows)",
        ),
        JobField(
            "lr",
            "float",
            None,
            minimum=0.0,
            maximum=1.0,
            open_minimum=True,
            optional=True,
            step=1e-4,
            label="Learning rate (0: from the steps)",
        ),
        JobField(
            "out", "folder", "sae/{store}-{site}", label="SAE folder (inside the runs directory)"
        ),
        JobField("seed", "int", 0, minimum=0, maximum=2**31 - 1, place="none"),
    ),
    commands=sae_commands,
    title="SAE ({arch}) on {store} {site}",
    output_page=FEATURES_PAGE,
    output_param="features",
    output_path="features",
    summary="Trains the SAE, then writes its feature statistics into FOLDER/features.",
    progress=training_progress,
    progress_file=LOG_NAME,
    step_notes=("", "writing feature statistics"),
    order=20,  # after a capture (which makes its store)
)
