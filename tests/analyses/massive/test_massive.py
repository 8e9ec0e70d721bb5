"""`massive`: planted massive values found with their positions, streaming = in memory, the
per-sequence ratio against numpy, refusals, the CLI."""

import json

import numpy as np
import pytest

from analyses.massive.analyses import ANALYSES, Params, detect, run
from analyses.massive.detect import MassiveDetector, is_delimiter, lower_median
from workbench.analysis.registry import analyses
from workbench.analysis.sources import Source
from workbench.cli.main import main
from workbench.errors import InputError
from workbench.store import StoreWriter

N_EX, SEQ, D = 20, 12, 64


def planted():
    """(rows, example, position, token) with three planted kinds:
    A: +-2000 at (position 0, dim 7) of every example: passes |a| > 100 and > 1000 x median;
    B: 150 at (position 5, dim 30) of examples 0-4: passes the absolute part only;
    C: example 9, position 3: hidden state scaled by 0.01 with 50 at dim 41: relative only."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N_EX, SEQ, D)).astype(np.float32)
    x[:, 0, 7] = np.where(np.arange(N_EX) % 2 == 0, 2000.0, -2000.0)
    x[:5, 5, 30] = 150.0
    x[9, 3] *= 0.01
    x[9, 3, 41] = 50.0
    example = np.repeat(np.arange(N_EX), SEQ)
    position = np.tile(np.arange(SEQ), N_EX)
    token = np.where(position == 0, 0, 10 + position)  # token 0 opens every example
    return x.reshape(-1, D), example, position, token


def write_store(path, x, example, position, token, bounds=(0, 3 * SEQ, 13 * SEQ, None)):
    writer = StoreWriter(path, {"model": "planted"})
    edges = [b if b is not None else len(x) for b in bounds]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        writer.append({"h": x[a:b]}, token[a:b], example[a:b], position[a:b])
    return writer.finalize()


def test_registered():
    names = {a.name: a for a in ANALYSES}
    assert analyses()["massive"] is names["massive"]
    assert analyses()["massive-fit"] is names["massive-fit"]
    assert names["massive"].inputs == ("acts",)
    assert set(names["massive-fit"].inputs) != {"acts"}  # the demo must not run it per site


def test_planted_values_found_with_positions(tmp_path):
    x, example, position, token = planted()
    store = write_store(tmp_path / "s", x, example, position, token)
    h = run(Source.from_store(store, "h"), Params(topk=N_EX)).headline
    top = h["top_values"]
    assert [e["dim"] for e in top] == [7] * N_EX
    assert [e["position"] for e in top] == [0] * N_EX
    assert [e["example"] for e in top] == list(range(N_EX))  # ties broken by row
    assert [e["value"] for e in top] == [2000.0 if i % 2 == 0 else -2000.0 for i in range(N_EX)]
    assert all(e["token_id"] == 0 for e in top)
    row0 = x[0]
    assert top[0]["ratio_to_median"] == pytest.approx(2000.0 / lower_median(np.abs(row0)))
    crit = h["criteria"]
    assert (crit["n_both"], crit["n_abs"], crit["n_rel"]) == (N_EX, N_EX + 5, N_EX + 1)
    assert {(e["example"], e["position"], e["dim"]) for e in h["massive"]} == {
        (i, 0, 7) for i in range(N_EX)
    }
    rel_only = [e for e in h["massive_relative"] if e["dim"] != 7]
    assert [(e["example"], e["position"], e["dim"]) for e in rel_only] == [(9, 3, 41)]
    assert rel_only[0]["abs"] == 50.0 and rel_only[0]["ratio_to_median"] > 1000
    dims = h["recurring_dims"]
    assert dims[0]["dim"] == 7 and dims[0]["n_examples_top"] == N_EX
    assert dims[0]["n_examples_relative"] == N_EX and dims[0]["share_examples_top"] == 1.0
    assert h["share_first_position"] == 1.0
    assert h["carrier_tokens"] == [{"token_id": 0, "n_examples": N_EX}]


def test_sequence_ratio_is_ratio_of_mean_max_to_mean_lower_median(tmp_path):
    x, example, position, token = planted()
    store = write_store(tmp_path / "s", x, example, position, token)
    h = detect(Source.from_store(store, "h"), Params())
    blocks = np.abs(x).reshape(N_EX, SEQ * D)
    maxes = blocks.max(1)
    medians = np.sort(blocks, axis=1)[:, (SEQ * D - 1) // 2]  # torch.median: lower middle
    assert h["mean_sequence_max_abs"] == pytest.approx(maxes.mean())
    assert h["mean_sequence_median_abs"] == pytest.approx(medians.mean(), rel=1e-6)
    assert h["sequence_ratio"] == pytest.approx(maxes.mean() / medians.mean(), rel=1e-6)


def test_lower_median_matches_torch_convention():
    import torch

    a = np.random.default_rng(3).random((5, 10)).astype(np.float32)
    expected = torch.median(torch.from_numpy(a), dim=1).values.numpy()
    np.testing.assert_array_equal(lower_median(a, axis=1), expected)


def test_streaming_equals_in_memory(tmp_path):
    x, example, position, token = planted()
    store = write_store(tmp_path / "s", x, example, position, token)
    whole = MassiveDetector(D, topk=30).update(x, np.arange(len(x)), example, position, token)
    reference = whole.summary(example, position, token)
    for batch_size in (1, 7, 100):
        h = detect(Source.from_store(store, "h"), Params(topk=30, batch_size=batch_size))
        for key in ("top_values", "massive", "massive_relative", "recurring_dims", "criteria"):
            assert h[key] == reference[key], (batch_size, key)
        assert h["sequence_ratio"] == pytest.approx(reference["sequence_ratio"])
    # arrays (no example information): per-row results are the same as the store's
    arrays = detect(Source(acts=x), Params(topk=30, batch_size=50))
    assert [(e["row"], e["dim"], e["abs"]) for e in arrays["top_values"]] == [
        (e["row"], e["dim"], e["abs"]) for e in reference["top_values"]
    ]
    assert arrays["criteria"] == reference["criteria"]
    assert arrays["n_examples"] == len(x)  # each row its own input


def test_detector_state_does_not_grow_with_rows():
    rng = np.random.default_rng(1)
    det = MassiveDetector(D, topk=5, max_listed=3, rel_threshold=2.0)  # many entries pass
    for start in range(0, 5000, 500):
        batch = rng.standard_normal((500, D))
        det.update(batch, np.arange(start, start + 500), np.arange(start, start + 500) // 10)
    assert len(det.top) == 5 and len(det.both) == 0 and len(det.relative) == 3
    assert sum(len(p) for p in det._pending) <= 10  # only the open example's rows


def test_refusals(tmp_path):
    with pytest.raises(InputError, match="no rows"):
        detect(Source(acts=np.zeros((0, 8), np.float32)), Params())
    bad = np.ones((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(InputError, match="row 2, dim 1"):
        detect(Source(acts=bad), Params())
    with pytest.raises(InputError, match="tokenizer="):
        x, example, position, token = planted()
        store = write_store(tmp_path / "s", x, example, position, token)
        detect(Source.from_store(store, "h"), Params(tokenizer=str(tmp_path / "nope")))


def test_delimiters():
    assert [is_delimiter(t) for t in [".", ",", "\n", "[CLS]", "<|endoftext|>", "the", "a1"]] == [
        True, True, True, True, True, False, False,
    ]  # fmt: skip


def test_cli_json_arrays_and_store(tmp_path, capsys):
    x, example, position, token = planted()
    np.save(tmp_path / "x.npy", x)
    assert main(["analyze", "massive", "--acts", str(tmp_path / "x.npy"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"top_values", "ratio_to_median", "massive"} <= set(out)
    assert out["top_values"][0]["dim"] == 7 and len(out["massive"]) == N_EX
    write_store(tmp_path / "s", x, example, position, token)
    args = ["analyze", "massive", "--store", str(tmp_path / "s"), "--site", "h", "--json"]
    assert main([*args, "--set", "topk=3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["position"] for e in out["top_values"]] == [0, 0, 0]
    assert out["settings"]["topk"] == 3
