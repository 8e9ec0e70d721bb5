"""Writing small batch specs over the quick toy-lm series (shared by the batch tests)."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_spec(path: Path, zoo_root: Path, **overrides) -> Path:
    """A small spec over the quick toy-lm series: four checkpoints, two sites, two analyses."""
    spec = {
        "name": "toy",
        "out": str(path.parent / "out"),
        "zoo_root": str(zoo_root),
        "device": "cpu",
        "models": [{"model": "toy-lm", "steps": [0, 2, 8, "last"]}],
        "datasets": [{"dataset": "text", "n_examples": 24, "max_length": 24}],
        "sites": ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"],
        "analyses": [
            {"analysis": "anisotropy", "params": {"n_pairs": 2000}},
            {"analysis": "probe", "label": "topic", "params": {"folds": 2}},
        ],
    }
    spec.update(overrides)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
