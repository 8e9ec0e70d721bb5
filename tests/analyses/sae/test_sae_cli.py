"""`workbench sae train|eval|features` through main([...])."""

from __future__ import annotations

import json

import numpy as np
from conftest import planted, write_store

from workbench.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_eval_features(tmp_path, capsys):
    x, _, _ = planted(n=800, d=16, m=24)
    acts = tmp_path / "x.npy"
    np.save(acts, x)
    out = tmp_path / "sae"
    code, text, _ = run(
        capsys,
        "sae",
        "train",
        "--acts",
        str(acts),
        "--arch",
        "topk",
        "--d-sae",
        "48",
        "--k",
        "3",
        "--batch-size",
        "100",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--saelens",
        "--json",
    )
    assert code == 0 and json.loads(text)["done"] is True
    code, text, _ = run(capsys, "sae", "eval", "--sae", str(out), "--acts", str(acts), "--json")
    got = json.loads(text)
    assert code == 0 and {"explained_variance", "l0", "dead_fraction"} <= set(got)
    assert got["l0"] <= 3 and 0 < got["explained_variance"] <= 1
    code, text, _ = run(
        capsys, "sae", "eval", "--sae", str(out / "saelens"), "--acts", str(acts), "--json"
    )
    assert json.loads(text)["explained_variance"] == got["explained_variance"]
    labels = {"tag": (x[:, 0] > 0).astype(np.int64)}
    store = write_store(tmp_path / "store", x, labels)
    code, _, _ = run(
        capsys,
        "sae",
        "train",
        "--store",
        str(store.path),
        "--site",
        "blocks.0.hook_resid_post",
        "--d-sae",
        "32",
        "--k",
        "2",
        "--batch-size",
        "200",
        "--out",
        str(tmp_path / "s2"),
    )
    assert code == 0
    code, text, _ = run(
        capsys,
        "sae",
        "features",
        "--sae",
        str(tmp_path / "s2"),
        "--store",
        str(store.path),
        "--out",
        str(tmp_path / "f"),
        "--json",
    )
    got = json.loads(text)
    assert code == 0 and {r["label"] for r in got["best"]} == {"tag"}
    assert len(got["html"]) >= 1 and (tmp_path / "f" / "features.json").is_file()


def test_bad_input(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, _, err = run(
        capsys,
        "sae",
        "train",
        "--acts",
        str(tmp_path / "x.npy"),
        "--d-sae",
        "16",
        "--k",
        "17",
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 2 and "k must be an integer in [1, d_sae = 16]" in err
    run(
        capsys,
        "sae",
        "train",
        "--acts",
        str(tmp_path / "x.npy"),
        "--d-sae",
        "16",
        "--k",
        "2",
        "--batch-size",
        "50",
        "--out",
        str(tmp_path / "b"),
    )
    np.save(tmp_path / "y.npy", x[:, :6])
    code, _, err = run(
        capsys, "sae", "eval", "--sae", str(tmp_path / "b"), "--acts", str(tmp_path / "y.npy")
    )
    assert code == 2 and "width 6 but the SAE has d_in = 8" in err
    x[3, 3] = np.nan
    np.save(tmp_path / "z.npy", x)
    code, _, err = run(
        capsys, "sae", "eval", "--sae", str(tmp_path / "b"), "--acts", str(tmp_path / "z.npy")
    )
    assert code == 2 and "NaN/Inf" in err
    code, _, err = run(
        capsys, "sae", "eval", "--sae", str(tmp_path / "nope"), "--acts", str(tmp_path / "x.npy")
    )
    assert code == 2 and "holds no SAE" in err
