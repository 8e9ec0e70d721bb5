"""`workbench steer extract|apply|sweep` on a small GPT-NeoX folder and a plain-module zoo model."""

from __future__ import annotations

import json

import pytest

from workbench.cli.main import main

SITE = "blocks.1.hook_resid_pre"


def _run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_extract_apply_sweep(neox_dir, tmp_path, capsys):
    vecs = tmp_path / "vecs"
    code, out, err = _run(capsys, [
        "steer", "extract", "--model", str(neox_dir), "--sites", "blocks.*.hook_resid_pre",
        "--positive", "the cat sat", "--positive", "a cat ran",
        "--negative", "the dog sat", "--negative", "a dog ran", "--read", "mean", "--out", str(vecs),
        "--device", "cpu",
    ])  # fmt: skip
    assert code == 0, err
    files = sorted(vecs.glob("*.safetensors"))
    assert len(files) == 4 and (vecs / f"{SITE}.json").is_file()

    code, out, err = _run(capsys, [
        "steer", "apply", "--model", str(neox_dir), "--vector", str(vecs / f"{SITE}.safetensors"),
        "--coeff", "0", "--prompt", "the cat", "--max-new-tokens", "4", "--json", "--device", "cpu",
    ])  # fmt: skip
    assert code == 0, err
    payload = json.loads(out)
    row = payload["generations"][0]
    assert row["steered"] == row["unsteered"]  # coefficient 0 changes nothing
    assert payload["settings"]["site"] == SITE

    code, out, err = _run(capsys, [
        "steer", "sweep", "--model", str(neox_dir), "--vectors", str(vecs), "--coeffs", "0,4",
        "--prompt", "the", "--prompt", "a", "--target", "cat", "--opposite", "dog",
        "--controls", "1", "--max-new-tokens", "2", "--out", str(tmp_path / "sweep"), "--json",
        "--device", "cpu",
    ])  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["analysis"] == "steering-sweep"
    assert set(result["effect_at_max_coeff"]) == {f"blocks.{i}.hook_resid_pre" for i in range(4)}
    assert (tmp_path / "sweep" / "result.json").is_file()


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--positive", "a"], "give both sets"),
        (["--dataset", "grammar-lm", "--label", "colour", "--positive-value", "1"], "no example label 'colour'"),
        (["--dataset", "grammar-lm", "--label", "sentiment"], "needs --label and --positive-value"),
    ],
)  # fmt: skip
def test_extract_bad_input(neox_dir, tmp_path, capsys, argv, match):
    base = ["steer", "extract", "--model", str(neox_dir), "--sites", SITE, "--out", str(tmp_path)]
    code, _, err = _run(capsys, [*base, *argv, "--device", "cpu"])
    assert code == 2 and match in err


def test_sweep_needs_vectors(neox_dir, capsys):
    code, _, err = _run(capsys, ["steer", "sweep", "--model", str(neox_dir), "--device", "cpu"])
    assert code == 2 and "no vectors" in err


def test_extract_from_probe_file(tmp_path, capsys):
    import numpy as np

    from analyses.steering import SteeringVector
    from probes.directions import save_direction

    probe = save_direction(tmp_path / "p.safetensors", np.ones(4), SITE, "topic", 1)
    code, _, err = _run(
        capsys, ["steer", "extract", "--from-probe", str(probe), "--out", str(tmp_path / "v")]
    )
    assert code == 0, err
    vector = SteeringVector.load(tmp_path / "v" / f"{SITE}.safetensors")
    assert vector.method == "probe" and vector.width == 4
    code, _, err = _run(capsys, ["steer", "extract", "--out", str(tmp_path / "v")])
    assert code == 2 and "needs --model and --sites" in err


def test_apply_scales_a_vector_by_the_sites_typical_norm(neox_dir, tmp_path, capsys):
    """`steer apply --scale`: auto leaves a contrastive vector as saved (scale null), typical
    records the site's typical activation norm on the prompts, a number is kept, and a bad
    value names what is valid."""
    from analyses.steering.extract import typical_norm
    from workbench.models import load_model

    vecs = tmp_path / "vecs"
    assert main(["steer", "extract", "--model", str(neox_dir), "--sites", SITE,
                 "--positive", "the cat sat", "--negative", "the dog sat", "--out", str(vecs),
                 "--device", "cpu"]) == 0  # fmt: skip
    base = ["steer", "apply", "--model", str(neox_dir), "--vector",
            str(vecs / f"{SITE}.safetensors"), "--coeff", "1", "--prompt", "the cat",
            "--max-new-tokens", "2", "--json", "--device", "cpu"]  # fmt: skip
    capsys.readouterr()
    scales = []
    for extra in ([], ["--scale", "typical"], ["--scale", "2.5"]):
        code, out, err = _run(capsys, base + extra)
        assert code == 0, err
        scales.append(json.loads(out)["settings"]["scale"])
    expected = typical_norm(load_model(str(neox_dir), device="cpu"), ["the cat"], SITE)
    assert scales[0] is None and scales[1] == pytest.approx(expected) and scales[2] == 2.5
    with pytest.raises(SystemExit) as stop:
        main(base + ["--scale", "big"])
    assert stop.value.code == 2
    assert "'big' is not a scale: give a positive number, auto, typical or vector" in (
        capsys.readouterr().err
    )
