"""The runs directory as the app reads it: checkpoint series among its stores (same model, same
rows, same sites), saved vectors, the richest store (the pages' default) on fabricated runs
dirs, and when it is empty, the one command that fills it."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from workbench.cli.main import build_parser
from workbench_app.services.runsdir import (
    checkpoint_series,
    fill_command,
    is_empty,
    richest_first,
    saved_analyses,
)

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
        "stores (toy-lm)": [(0, "stores/toy-lm-0"), (100, "stores/toy-lm")],
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


# -- the richest store, an empty runs directory -----------------------------------------------


def fabricate(root, stores: dict[str, tuple[int, float]], results: list[str]) -> dict:
    """A runs dir with a manifest per store (relative path -> (number of sites, manifest
    mtime)) and an empty `result.json` per path in `results` (under `root/results/`); returns
    the stores' entries as `stores_by_path` gives them (only `sites` is read)."""
    entries = {}
    for relative, (n_sites, mtime) in stores.items():
        manifest = root / relative / "manifest.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text("{}")
        os.utime(manifest, (mtime, mtime))
        entries[relative] = {"sites": [f"blocks.{i}.hook_resid_post" for i in range(n_sites)]}
    for relative in results:
        meta = root / "results" / relative / "result.json"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text("{}")
    return entries


def test_saved_analyses_are_read_per_store_name_one_or_two_folders_down(tmp_path):
    fabricate(tmp_path, {}, [
        "twonn/toy/blocks.0.hook_resid_post", "twonn/toy/blocks.1.hook_resid_post",  # per site
        "neural-collapse/toy",  # a series: the result right in the store's folder
        "steering-sweep/toy/positive",
        "mle/other/blocks.0.hook_resid_post",
        "pca-dim/deep/a/b",  # three folders down: not a result of `deep`
    ])  # fmt: skip
    (tmp_path / "results" / "anisotropy" / "toy" / "blocks.0").mkdir(parents=True)  # no result
    assert saved_analyses(tmp_path) == {
        "toy": {"twonn", "neural-collapse", "steering-sweep"},
        "other": {"mle"},
    }
    assert saved_analyses(tmp_path / "missing") == {}


def test_richest_first_ranks_analyses_then_sites_then_the_newest_manifest(tmp_path):
    stores = fabricate(
        tmp_path,
        {
            "stores/wide": (7, 1000.0),  # the most sites, two analyses
            "stores/toy-lm": (1, 1000.0),  # one site, three analyses: the richest
            "stores/old": (4, 1000.0),  # four sites, two analyses, captured first
            "stores/new": (4, 2000.0),  # the same, captured later
            "stores/twin-b": (4, 1000.0),  # the same as `old`: path order
            "stores/bare": (9, 3000.0),  # no analysis, however wide and new
            "sweep/stores/toy-lm": (4, 4000.0),  # not stores/<name>: the results are not its
        },
        [
            *(f"{a}/toy-lm/blocks.0.hook_resid_post" for a in ("twonn", "mle", "pca-dim")),
            *(f"{a}/{name}/blocks.0.hook_resid_post" for a in ("twonn", "mle")
              for name in ("wide", "old", "new", "twin-b")),
        ],
    )  # fmt: skip
    assert richest_first(tmp_path, stores) == [
        "stores/toy-lm",
        "stores/wide",
        "stores/new",
        "stores/old",
        "stores/twin-b",
        "stores/bare",
        "sweep/stores/toy-lm",
    ]
    # a name whose store is gone ranks by its saved results alone (no sites, no manifest)
    assert richest_first(tmp_path, {"stores/gone": {}, "stores/bare": stores["stores/bare"]}) == [
        "stores/bare",
        "stores/gone",
    ]
    assert richest_first(tmp_path, {}) == []


def test_an_empty_runs_dir_has_no_file_in_it_or_below(tmp_path):
    assert is_empty(tmp_path / "missing")
    (tmp_path / "stores" / "toy").mkdir(parents=True)  # folders alone: still empty
    assert is_empty(tmp_path)
    (tmp_path / "stores" / "toy" / "manifest.json").write_text("{}")
    assert not is_empty(tmp_path)
    plain = tmp_path / "a-file"
    plain.write_text("")
    assert is_empty(plain)  # not a directory: nothing for the app either


@pytest.mark.parametrize("where", ["default", "inside", "outside", "cwd"])
def test_the_fill_command_names_the_runs_dir_unless_it_is_the_demos_default(
    where, tmp_path, monkeypatch
):
    cwd = tmp_path / "work dir"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    root, shown = {
        "default": (cwd / "runs" / "demo", None),
        "inside": (cwd / "runs", "runs"),
        "outside": (tmp_path / "else where", str(tmp_path / "else where")),  # quoted
        "cwd": (cwd, "."),
    }[where]
    command = fill_command(root)
    words = shlex.split(command)
    assert words[:2] == ["workbench", "demo"]
    assert (words[-2:] == ["--out", shown]) if shown else ("--out" not in words)
    args = build_parser().parse_args(words[1:])  # the real CLI takes it, and writes to root
    assert args.command == "demo" and args.no_app
    assert Path(args.out).resolve() == root.resolve()
