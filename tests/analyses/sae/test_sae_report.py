"""What the SAE family declares for others (`analyses.sae.report`): the reader of feature
reports gives exactly a planted report's best latents; the training job's command lines, its
architectures (the registry's) and its progress from the trainer's log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analyses.sae.features import FeatureStats, LabelStats, save_feature_stats
from analyses.sae.registry import ARCHITECTURES
from analyses.sae.report import (
    FEATURES,
    SAE_JOB,
    read_features,
    sae_commands,
    training_progress,
)
from workbench.analysis.plugins import Link, SiteQuery
from workbench.errors import InputError

SITE = "blocks.1.hook_resid_post"


def plant(folder: Path, f1: np.ndarray, store: str = "stores/toy", site: str = SITE) -> None:
    """A feature report whose F1 table (d_sae, values) of the label `topic` is `f1`."""
    d_sae = f1.shape[0]
    stats = FeatureStats(
        n_rows=100,
        density=np.full(d_sae, 0.1),
        max_act=np.ones(d_sae),
        mean_act=np.ones(d_sae),
        top_rows=np.zeros((d_sae, 2), dtype=np.int64),
        top_values=np.zeros((d_sae, 2)),
        labels={"topic": LabelStats("topic", np.arange(f1.shape[1]), f1, f1, f1, f1,
                                    np.full(f1.shape[1], 30))},
    )  # fmt: skip
    save_feature_stats(stats, folder, {"sae": "sae/x", "store": store, "site": site})


def test_the_reader_gives_the_planted_best_latents(tmp_path):
    """Per topic value the best latent by F1: 3 (0.9), 5 (0.7), 3 again (0.2: listed once)."""
    f1 = np.zeros((8, 3))
    f1[3, 0], f1[5, 1], f1[3, 2] = 0.9, 0.7, 0.2
    plant(tmp_path / "sae" / "toy" / "features", f1, store="elsewhere/stores/toy")
    path = tmp_path / "sae" / "toy" / "features" / "features.json"
    report = read_features(path, SiteQuery(tmp_path, "toy", "toy-lm", SITE))
    assert report is not None
    assert report.folder == "sae/toy/features" and report.summary == "100 rows"
    assert report.link == Link("SAE_features", {"features": "sae/toy/features"})
    assert [(i.label, i.text) for i in report.items] == [
        ("latent 3", ": topic=0 (F1 0.90)"),
        ("latent 5", ": topic=1 (F1 0.70)"),
    ]
    assert report.items[0].value == pytest.approx(0.9)
    assert report.items[1].link == Link(
        "SAE_features", {"features": "sae/toy/features", "latent": 5}
    )


def test_the_reader_keeps_the_top_latents_by_f1(tmp_path):
    values = np.array([0.1, 0.8, 0.3, 0.95, 0.5, 0.7, 0.2])
    f1 = np.diag(values)  # latent j is best for value j, with F1 values[j]
    plant(tmp_path / "f", f1)
    path, query = tmp_path / "f" / "features.json", SiteQuery(tmp_path, "toy", "", SITE)
    report, two = read_features(path, query), read_features(path, query, top=2)
    assert report is not None and two is not None
    assert [i.label for i in report.items] == [f"latent {j}" for j in (3, 1, 5, 4, 2)]
    assert two.items == report.items[:2]


def test_the_reader_skips_other_sites_stores_and_broken_files(tmp_path):
    plant(tmp_path / "a", np.eye(2), site="blocks.0.hook_resid_post")
    plant(tmp_path / "b", np.eye(2), store="stores/other")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "features.json").write_text('{"meta": ')
    (tmp_path / "d").mkdir()
    broken = {"meta": {"site": SITE, "store": "toy"}, "best": [{"latent": "x", "f1": 1}]}
    (tmp_path / "d" / "features.json").write_text(json.dumps(broken))
    query = SiteQuery(tmp_path, "toy", "toy", SITE)
    for folder in "abcd":
        assert read_features(tmp_path / folder / "features.json", query) is None
    assert FEATURES.reports_at(query) == []
    assert FEATURES.file_name == "features.json"
    assert [r.folder for r in FEATURES.reports_at(SiteQuery(tmp_path, "other", "", SITE))] == ["b"]


def test_the_job_offers_every_registered_architecture():
    arch = SAE_JOB.get_field("arch")
    assert arch.choices == tuple(ARCHITECTURES) and arch.default == "topk"
    with pytest.raises(InputError, match="arch 'gated' is not one of.*topk"):
        arch.check("gated")


def test_the_job_trains_then_writes_features(tmp_path):
    values = SAE_JOB.validate({"store": "s", "site": SITE, "out": "o", "d_sae": 64, "lr": 1e-3})
    values.update(store=tmp_path / "stores" / "s", out=tmp_path / "sae" / "x")
    train, features = sae_commands(values)
    assert train == [
        "sae", "train", f"--store={tmp_path}/stores/s", f"--site={SITE}",
        f"--out={tmp_path}/sae/x", "--arch=topk", "--seed=0", "--lr=0.001", "--d-sae=64",
    ]  # fmt: skip
    assert features == [
        "sae", "features", f"--sae={tmp_path}/sae/x", f"--store={tmp_path}/stores/s",
        f"--site={SITE}", f"--out={tmp_path}/sae/x/features", "--html=none",
    ]  # fmt: skip
    assert "--d-sae" not in " ".join(sae_commands({**values, "d_sae": None})[0])
    (tmp_path / "sae" / "x").mkdir(parents=True)
    (tmp_path / "sae" / "x" / "sae.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="already holds a trained SAE"):
        sae_commands(values)


def test_progress_reads_the_training_log(tmp_path):
    path = tmp_path / "train_log.jsonl"
    assert training_progress(path) is None
    lines = [{"event": "start", "step": 0, "total_steps": 200, "sae": {"d_in": 8}}]
    lines += [{"event": "step", "step": s, "loss": 1.0} for s in (10, 20, 30)]
    path.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"event": "step", "st')
    assert training_progress(path) == (0.15, "step 30/200")
    assert SAE_JOB.progress is training_progress and SAE_JOB.progress_file == "train_log.jsonl"
