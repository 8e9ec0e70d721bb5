"""The demo's codebook step keeps a codebook trained with today's defaults and retrains one
trained with other settings (an upgrade changed the defaults), instead of reporting it."""

from __future__ import annotations

import json
from dataclasses import asdict

from analyses.codebook import demo
from analyses.codebook import train as train_module
from analyses.codebook.config import N_CODES, N_TRAIN, TrainConfig


def _write(folder, train, accuracy):
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "train": train,
        "n_train": N_TRAIN,
        "without_codebooks": {"valid_accuracy": 0.915},
        "with_codebooks": {"valid_accuracy": accuracy},
    }
    (folder / "codebook.json").write_text(json.dumps({"n_codes": N_CODES, "report": report}))


def test_a_codebook_of_older_defaults_is_retrained_and_a_current_one_kept(tmp_path, monkeypatch):
    calls = []

    def fake_train(*args, out, **kwargs):
        calls.append(out)
        _write(out, json.loads(json.dumps(asdict(TrainConfig()))), 0.909)

    monkeypatch.setattr(train_module, "train_codebook_model", fake_train)
    folder = tmp_path / "codebooks" / "fsm-lm"
    _write(folder, {**asdict(TrainConfig()), "lr": 1e-2, "trainable": "all"}, 0.833)
    line = demo.demo_step(tmp_path, None, "cpu")
    assert calls == [folder] and "0.915 -> 0.909" in line
    assert "0.915 -> 0.909" in demo.demo_step(tmp_path, None, "cpu") and len(calls) == 1
