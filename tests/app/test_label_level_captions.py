"""The pages that show label-aware results say which label level ran (issue 24, item 3): the
Collapse-and-probes page under a probe result, the SAE features page under its label table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from workbench.store import StoreWriter

PAGES = Path(__file__).resolve().parents[2] / "app" / "pages"
SITE = "blocks.0.hook_resid_post"


def _store(runs: Path) -> Path:
    """60 examples x 4 rows; `mood` per example, `tag` per row."""
    rng = np.random.default_rng(0)
    n, seq = 240, 4
    example = np.arange(n) // seq
    x = rng.standard_normal((n, 8)).astype(np.float32)
    x[:, 0] += 3 * (example % 2)
    writer = StoreWriter(runs / "stores" / "toy", {"model": "toy", "sites": [SITE]})
    writer.append(
        {SITE: x},
        np.arange(n) % 40,
        example,
        np.arange(n) % seq,
        row_labels={"tag": (x[:, 1] > 0).astype(np.int64)},
        example_labels={"mood": np.arange(n // seq) % 2},
    )
    return writer.finalize().path


def test_probe_result_names_its_label_level(runs_dir):
    from workbench.cli.main import main

    store = _store(runs_dir)
    args = ["analyze", "probe", "--store", str(store), "--site", SITE, "--label", "mood"]
    assert main([*args, "--set", "folds=2", "--out", str(runs_dir / "results" / "probe")]) == 0
    at = AppTest.from_file(str(PAGES / "5_Collapse_and_probes.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Label level read: example." in [c.value for c in at.caption]


def test_sae_features_page_names_each_labels_level(runs_dir):
    from analyses.sae import identity_sae, save_sae
    from workbench.cli.main import main

    store = _store(runs_dir)
    folder = save_sae(identity_sae(8), runs_dir / "sae" / "identity", {"site": SITE})
    args = ["sae", "features", "--sae", str(folder), "--store", str(store), "--html", "none"]
    assert main([*args, "--out", str(folder / "features")]) == 0
    at = AppTest.from_file(str(PAGES / "7_SAE_features.py"), default_timeout=60)
    at.query_params["latent"] = "0"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Label levels: tag per token, mood per example." in [c.value for c in at.caption]
