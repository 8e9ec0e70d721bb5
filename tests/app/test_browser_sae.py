"""The SAE feature page in headless Chromium over a runs dir holding a labelled store, an SAE
trained on it and its feature report (all made through the CLI): no exception, charts drawn,
shaded contexts present, a screenshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from app_browser import rendered_page, require_chromium

from workbench.cli.main import main
from workbench.store import StoreWriter

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_chromium()

SITE = "blocks.0.hook_resid_post"


def make_runs(runs: Path) -> None:
    rng = np.random.default_rng(0)
    n, d, seq = 960, 16, 8
    x = rng.standard_normal((n, d)).astype(np.float32)
    tag = (x[:, 0] > 0.5).astype(np.int64)
    writer = StoreWriter(
        runs / "stores" / "toy",
        {"model": "toy", "dataset": "toy", "sites": [SITE], "dtype": "float32"},
    )
    writer.append(
        {SITE: x},
        np.arange(n) % 40,
        np.arange(n) // seq,
        np.arange(n) % seq,
        row_labels={"tag": tag},
    )
    writer.finalize()
    assert (
        main(
            [
                "sae",
                "train",
                "--store",
                str(runs / "stores" / "toy"),
                "--site",
                SITE,
                "--d-sae",
                "32",
                "--k",
                "4",
                "--batch-size",
                "64",
                "--epochs",
                "2",
                "--log-every",
                "2",
                "--out",
                str(runs / "sae" / "toy"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "sae",
                "features",
                "--sae",
                str(runs / "sae" / "toy"),
                "--store",
                str(runs / "stores" / "toy"),
                "--out",
                str(runs / "sae" / "toy" / "features"),
                "--html",
                "none",
            ]
        )
        == 0
    )


def test_feature_page_renders(tmp_path):
    runs = tmp_path / "runs"
    make_runs(runs)
    with rendered_page(runs, "SAE_features?latent=3", 4, "page-sae-features.png", tmp_path) as (
        page,
        text,
    ):
        assert "Latent 3" in text and "Top activations" in text and "tag=1" in text
        assert page.locator("span[title]").count() > 10  # shaded tokens
