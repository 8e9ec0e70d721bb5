"""A batch spec over a hub repository's step<N> revisions (`model: org/tiny`), read from a
Hugging Face cache fabricated in the real layout with the network blocked (see
tests/workbench/models/hub_cache.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.workbench.models.hub_cache import TINY, hub_cache, own_cache, repo_folder
from workbench.batch import load_spec, make_plan, read_results, run_batch
from workbench.errors import InputError
from workbench.models import load_model

__all__ = ["hub_cache", "own_cache"]  # fixtures used below


def write_spec(path: Path, steps, model: str = TINY) -> Path:
    spec = {
        "name": "hub",
        "out": str(path.parent / "out"),
        "device": "cpu",
        "models": [{"model": model, "steps": steps}],
        "datasets": [{"dataset": "text", "n_examples": 8, "max_length": 16}],
        "sites": ["blocks.1.hook_resid_post"],
        "analyses": [{"analysis": "anisotropy", "params": {"n_pairs": 200}}],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_spec_names_a_hub_series_and_runs(hub_cache, tmp_path):
    every = make_plan(load_spec(write_spec(tmp_path / "every.yaml", {"every": 2})), estimate=False)
    assert [c.checkpoint.label for c in every.captures] == [f"{TINY}@{s}" for s in (0, 32, 48)]
    plan = make_plan(
        load_spec(write_spec(tmp_path / "ends.yaml", ["first", "last"])), estimate=False
    )
    checkpoints = [c.checkpoint for c in plan.captures]
    assert [(c.model, c.step) for c in checkpoints] == [(TINY, 0), (TINY, 48)]
    # the fingerprint hashes the snapshot's files through their links into blobs/: the same
    # value the loaded checkpoint reports for its weights
    assert checkpoints[1].fingerprint == load_model(f"{TINY}@48", device="cpu").weights_hash
    assert checkpoints[0].fingerprint != checkpoints[1].fingerprint
    status = run_batch(plan, log=lambda _line: None)
    assert status["failed"] == 0 and status["done"] == status["cells"] == 2
    frame = read_results(str(tmp_path / "out"))
    assert set(frame["step"]) == {0, 48} and set(frame["model"]) == {TINY}


def test_a_half_downloaded_step_is_refused_at_planning(own_cache, tmp_path):
    snapshot = repo_folder(own_cache, TINY) / "snapshots"
    commit = (repo_folder(own_cache, TINY) / "refs" / "step48").read_text()
    (snapshot / commit / "model.safetensors").unlink()
    with pytest.raises(InputError, match="'step48'.*model.safetensors"):
        make_plan(load_spec(write_spec(tmp_path / "s.yaml", ["last"])), estimate=False)


def test_steps_on_a_hub_model_without_step_revisions(hub_cache, tmp_path):
    with pytest.raises(InputError, match="single model.*cached revisions: main"):
        make_plan(load_spec(write_spec(tmp_path / "p.yaml", ["last"], "org/plain")), estimate=False)
