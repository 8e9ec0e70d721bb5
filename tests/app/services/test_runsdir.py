"""Checkpoint series among a runs directory's stores: same model, same rows, same sites."""

from __future__ import annotations

import json

from workbench_app.services.runsdir import checkpoint_series

SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


def entry(model: str, step: int | None, n: int = 64, sites=SITES, dataset: str = "grammar-lm"):
    spec = {"model": model if step is None else f"{model}@{step}", "dataset": dataset,
            "n_examples": n, "max_length": 32, "positions": "all"}  # fmt: skip
    if step is not None:
        spec["checkpoint_step"] = step
    return {"spec": spec, "sites": list(sites)}


def test_series_group_one_model_on_the_same_rows_and_sites():
    stores = {
        # a capture_checkpoints folder whose specs lack the step: it comes from the folder name
        "ckpt/toy/step10": entry("toy", None),
        "ckpt/toy/step0": entry("toy", None),
        "ckpt/toy/step200": entry("toy", None),
        # a batch's shared store folder: two models, and one model on other rows
        "sweep/stores/a1": entry("toy", 0, n=32),
        "sweep/stores/a2": entry("toy", 8, n=32),
        "sweep/stores/b1": entry("fsm", 0, n=32, dataset="fsm"),
        "sweep/stores/b2": entry("fsm", 8, n=32, dataset="fsm"),
        "sweep/stores/c1": entry("fsm", 8, n=16, dataset="fsm"),  # other rows: alone, left out
        # the same step twice: the first path is kept
        "stores/toy-lm": entry("toy-lm", 100),
        "stores/toy-lm-again": entry("toy-lm", 100),
        "stores/toy-lm-0": entry("toy-lm", 0),
        # other sites than the rest of their model's stores: no series
        "stores/one-site": entry("toy-lm", 5, sites=SITES[:1]),
        "stores/no-step": entry("minilm", None),
    }
    series = checkpoint_series(stores)
    assert series == {
        "ckpt/toy": [(0, "ckpt/toy/step0"), (10, "ckpt/toy/step10"), (200, "ckpt/toy/step200")],
        "sweep/stores (toy on grammar-lm, 32 examples, 2 sites)": [
            (0, "sweep/stores/a1"),
            (8, "sweep/stores/a2"),
        ],
        "sweep/stores (fsm on fsm, 32 examples, 2 sites)": [
            (0, "sweep/stores/b1"),
            (8, "sweep/stores/b2"),
        ],
        "stores": [(0, "stores/toy-lm-0"), (100, "stores/toy-lm")],
    }


def test_no_series_without_two_steps():
    assert checkpoint_series({"stores/a": entry("toy", 5), "stores/b": entry("fsm", 5)}) == {}


def test_saved_vectors_are_safetensors_with_a_sidecar_naming_their_method(tmp_path):
    from workbench_app.services.runsdir import saved_vectors

    def write(relative: str, meta: dict | None) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        if meta is not None:
            path.with_suffix(".json").write_text(json.dumps(meta))

    write("vectors/uploads/b.safetensors", {"method": "upload"})
    write("vectors/a.safetensors", {"method": "mean_difference"})
    write("sae/toy/sae.safetensors", {"d_sae": 8})  # an SAE's weights: no method
    write("vectors/bare.safetensors", None)  # no sidecar
    found = saved_vectors(tmp_path)
    assert found == {
        "vectors/a.safetensors": tmp_path / "vectors/a.safetensors",
        "vectors/uploads/b.safetensors": tmp_path / "vectors/uploads/b.safetensors",
    }
    # only the first `limit` files in path order are looked at: sae/..., then vectors/a
    assert list(saved_vectors(tmp_path, limit=1)) == []
    assert list(saved_vectors(tmp_path, limit=2)) == ["vectors/a.safetensors"]
