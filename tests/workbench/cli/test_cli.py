"""The CLI verbs, run in-process through `main(argv)` (same code path as the console script)."""

import json

import numpy as np
import pytest

from workbench.cli.main import build_parser, main
from workbench.store import ActivationStore


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_verb_has_help(capsys):
    for verb in ("sites", "capture", "info", "analyze", "demo", "app"):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([verb, "--help"])
        assert exit_info.value.code == 0
        assert verb in capsys.readouterr().out


def test_sites_lists_and_filters(capsys, neox_dir):
    code, out, _ = run(
        capsys, "sites", str(neox_dir), "--filter", "blocks.*.hook_resid_post", "--json"
    )
    assert code == 0
    assert json.loads(out) == [f"blocks.{i}.hook_resid_post" for i in range(4)]
    code, _, err = run(capsys, "sites", str(neox_dir), "--filter", "blocks.*.hook_resid_pots")
    assert code == 2 and "closest valid names" in err and "blocks.0.hook_resid_post" in err


def test_capture_info_analyze_round_trip(capsys, neox_dir, tmp_path):
    out_dir = tmp_path / "store"
    code, out, err = run(
        capsys,
        "capture",
        "--model",
        str(neox_dir),
        "--sites",
        "blocks.*.hook_resid_post",
        "--text",
        "the cat sat on the mat",
        "--text",
        "a dog",
        "--out",
        str(out_dir),
        "--no-progress",
        "--device",
        "cpu",
    )
    assert code == 0, err
    store = ActivationStore(out_dir)
    assert store.n_examples == 2 and store.n_rows == 7 + 3  # bos + words
    code, out, _ = run(capsys, "info", str(out_dir), "--verify")
    assert code == 0 and "checksums verified" in out and "blocks.3.hook_resid_post" in out
    code, out, _ = run(capsys, "info", str(out_dir), "--json")
    assert json.loads(out)["n_rows"] == 10
    code, out, _ = run(
        capsys,
        "analyze",
        "activation-stats",
        "--store",
        str(out_dir),
        "--site",
        "blocks.1.hook_resid_post",
        "--json",
    )
    payload = json.loads(out)
    assert code == 0 and payload["n_rows"] == 10
    expected = np.abs(store.read("blocks.1.hook_resid_post")).max()
    assert payload["max_abs"] == pytest.approx(expected, rel=1e-6)
    # a different spec into the same directory is refused, and the store is intact
    code, _, err = run(
        capsys,
        "capture",
        "--model",
        str(neox_dir),
        "--sites",
        "blocks.0.hook_resid_post",
        "--text",
        "a dog",
        "--out",
        str(out_dir),
        "--no-progress",
        "--device",
        "cpu",
    )
    assert code == 2 and "overwrite" in err
    assert ActivationStore(out_dir).n_rows == 10


def test_analyze_on_user_arrays(capsys, tmp_path):
    acts = np.random.default_rng(0).normal(size=(500, 6)).astype(np.float32)
    acts[17, 4] = 50.0
    np.save(tmp_path / "a.npy", acts)
    code, out, _ = run(
        capsys,
        "analyze",
        "activation-stats",
        "--acts",
        str(tmp_path / "a.npy"),
        "--set",
        "topk=3",
        "--json",
    )
    payload = json.loads(out)
    assert code == 0 and payload["settings"] == {"topk": 3}
    assert payload["top_entry"]["row"] == 17 and payload["top_entry"]["dim"] == 4
    code, _, err = run(
        capsys, "analyze", "activation-stats", "--acts", str(tmp_path / "a.npy"), "--set", "k=3"
    )
    assert code == 2 and "no setting 'k'" in err and "topk" in err
    code, _, err = run(capsys, "analyze", "nope", "--acts", str(tmp_path / "a.npy"))
    assert code == 2 and "activation-stats" in err
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run(capsys, "analyze", "activation-stats", "--acts", str(tmp_path / "obj.npy"))
    assert code == 2 and "pickled" in err


def test_bad_inputs_name_the_value(capsys, tmp_path):
    code, _, err = run(
        capsys,
        "capture",
        "--model",
        "minilm",
        "--sites",
        "x",
        "--dataset",
        "nope",
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
    )
    assert code == 2 and "unknown dataset 'nope'" in err and "text" in err
    code, _, err = run(capsys, "info", str(tmp_path))
    assert code == 2 and "not an activation store" in err
    code, _, err = run(
        capsys,
        "capture",
        "--model",
        "minilm",
        "--sites",
        "hook_embed",
        "--text",
        "hi",
        "--positions",
        "first",
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
    )
    assert code == 2 and "bad positions 'first'" in err
