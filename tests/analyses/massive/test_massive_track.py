"""Massive activations on a live model: tracking over a Pythia-style folder of checkpoints (a
tiny GPT-NeoX with a planted activation that grows with the step) against a direct computation,
the fit of the tracked ratio, and the ablation's invariances."""

import numpy as np
import pandas as pd
import pytest
import torch

from analyses.massive.detect import lower_median
from analyses.massive.track import (
    _next_token_loss,
    ablate_massive,
    ablation_summary,
    fit_tracked,
    massive_entries,
    track_series,
)
from workbench.errors import InputError
from workbench.hooks.capture import capture

pytestmark = pytest.mark.slow

TEXTS = ["the big dog ran .", "a small cat sat on the mat .", "the dog saw a cat ."]
SITE = "blocks.1.hook_resid_post"


STEPS = [0, 10, 20, 40, 80]
WORDS = ["the", "a", "big", "small", "dog", "cat", "ran", "sat", "saw", "on", "mat", "."]
PLANTED_DIM = 5


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """step<N>/ Hugging Face folders; the BOS embedding's dim 5 is 1 + N/2 at step N."""
    from workbench.models import CheckpointSeries
    from workbench.zoo.hf_folder import gpt_neox_model, save_hf_folder, word_tokenizer

    root = tmp_path_factory.mktemp("series")
    tokenizer = word_tokenizer(WORDS)
    for step in STEPS:
        model = gpt_neox_model(len(tokenizer), n_layers=2, d_model=32, n_heads=2, n_ctx=32)
        with torch.no_grad():
            model.gpt_neox.embed_in.weight[0, PLANTED_DIM] = 1.0 + step / 2
        save_hf_folder(model, tokenizer, root / f"step{step}")
    return CheckpointSeries(root)


@pytest.fixture(scope="module")
def handle(series):
    return series.load(series.steps[-1], device="cpu")


def test_track_matches_direct_computation_and_fits(series):
    steps = STEPS
    frame = track_series(str(series.folder), TEXTS)  # any Pythia-style folder
    assert list(frame["step"].unique()) == steps
    assert sorted(frame["layer"].unique()) == [0, 1]
    late = frame[frame["step"] == steps[-1]]
    assert (late["top_dim"] == PLANTED_DIM).all() and (late["top_position"] == 0).all()
    assert (late["top_token"] == "<|endoftext|>").all()
    layer0 = frame[frame["layer"] == 0]["ratio"].to_numpy()
    assert (np.diff(layer0[1:]) > 0).all()  # the planted value grows with the step
    # step of the last row, layer 1: the paper's r = mean(max |a|) / mean(lower median |a|)
    handle = series.load(steps[-1], device="cpu")
    acts = capture(handle, SITE, TEXTS)
    x = np.abs(acts.numpy(SITE))
    example = acts.example_index.numpy()
    maxes = [x[example == e].max() for e in range(len(TEXTS))]
    medians = [lower_median(x[example == e].ravel()) for e in range(len(TEXTS))]
    row = frame[(frame["step"] == steps[-1]) & (frame["layer"] == 1)].iloc[0]
    assert row["ratio"] == pytest.approx(np.mean(maxes) / np.mean(medians), rel=1e-6)
    assert row["top_abs"] == pytest.approx(x.max())
    assert row["top_dim"] == int(np.argmax(x) % x.shape[1])
    result = fit_tracked(frame)
    assert [entry["layer"] for entry in result.headline["layers"]] == [0, 1]
    assert all(np.isfinite(entry["r2"]) for entry in result.headline["layers"])
    with pytest.raises(InputError, match="4 checkpoints for a 5-parameter curve"):
        fit_tracked(frame[frame["step"].isin(steps[:4])])


def test_loss_equals_the_models_own_loss(handle):
    batch = handle.prepare([TEXTS[0]])
    ours = _next_token_loss(handle, batch)
    with torch.no_grad():
        theirs = float(handle.model(batch.input_ids, return_type="loss"))
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_massive_entries_are_each_examples_largest(handle):
    batch = handle.prepare(TEXTS)
    acts = capture(handle, SITE, batch, positions=None)[SITE]
    mask = batch.attention_mask.bool()
    entries = massive_entries(acts, mask, per_example=2)
    for b in range(len(TEXTS)):
        a = acts[b].abs().masked_fill(~mask[b][:, None], -1).flatten()
        top = set(torch.topk(a, 2).indices.tolist())
        mine = {int(p) * acts.shape[2] + int(d) for bb, p, d in entries.tolist() if bb == b}
        assert mine == top


def test_mean_ablation_of_identical_inputs_changes_nothing(handle):
    """All sequences equal: the mean over sequences at (position, dim) is each one's own value."""
    losses, entries = ablate_massive(handle, [TEXTS[1]] * 3, SITE, modes=("mean",), n_draws=2)
    assert np.allclose(losses["delta_loss"], 0.0, atol=1e-6)
    assert (entries["position"] >= 0).all() and len(entries) == 6


def test_zero_ablation_changes_loss_and_controls_are_seeded(handle):
    losses, entries = ablate_massive(handle, TEXTS, SITE, modes=("zero",), n_draws=3, seed=4)
    again, _ = ablate_massive(handle, TEXTS, SITE, modes=("zero",), n_draws=3, seed=4)
    assert losses["loss"].tolist() == again["loss"].tolist()
    massive = losses[losses["target"] == "massive"]
    assert abs(float(massive["delta_loss"].iloc[0])) > 0
    assert (losses["n_entries"] == 2 * len(TEXTS)).all()
    summary = ablation_summary(losses).iloc[0]
    assert summary["n_draws"] == 3 and summary["mode"] == "zero"
    # the model is unedited afterwards
    assert _next_token_loss(handle, handle.prepare(TEXTS)) == pytest.approx(
        float(losses["clean_loss"].iloc[0])
    )


def test_refusals(handle, tmp_path):
    with pytest.raises(InputError, match="not a checkpoint series"):
        track_series(tmp_path / "missing", TEXTS)
    with pytest.raises(InputError, match="valid: zero, mean"):
        ablate_massive(handle, TEXTS, SITE, modes=("shuffle",))


def test_findings_read_planted_frames():
    from analyses.massive.track import finding_lines, findings

    trajectory = pd.DataFrame(
        {
            "step": [0, 10, 20, 0, 10, 20],
            "site": ["s0"] * 3 + ["s1"] * 3,
            "layer": [0, 0, 0, 1, 1, 1],
            "ratio": [2.0, 9.0, 5.0, 3.0, 4.0, 6.0],
            "top_abs": [10.0, 150.0, 20.0, 1.0, 2.0, 3.0],
            "top_ratio_to_median": [5.0, 999.0, 5.0, 1.0, 1.0, 1.0],
        }
    )
    rows = [("zero", "massive", 0.5), *(("zero", "random", d) for d in (0.0, 0.1, -0.1))]
    rows += [("mean", "massive", 0.05), *(("mean", "random", d) for d in (0.0, 0.1, -0.1))]
    losses = pd.DataFrame(rows, columns=["mode", "target", "delta_loss"]).assign(clean_loss=2.0)
    found = findings(trajectory.sample(frac=1, random_state=0), losses)
    assert found["layers"][0] == {
        "layer": 0, "site": "s0", "first_step": 0, "first_ratio": 2.0, "last_step": 20,
        "last_ratio": 5.0, "peak_step": 10, "peak_ratio": 9.0,
    }  # fmt: skip
    assert found["layers"][1]["peak_step"] == 20 and found["layers"][1]["last_ratio"] == 6.0
    # random draws: mean 0, std 0.1; 0.5 > 0 + 0.2 is significant, 0.05 is not
    verdicts = {a["mode"]: a["significant"] for a in found["ablation"]}
    assert verdicts == {"zero": True, "mean": False}
    assert found["sun_criterion"] is False  # 150 > 100 but 999 < 1000
    lines = finding_lines(found, "s1")
    assert lines[0].startswith("layer 0: max/median 2.0 at step 0 -> 5.0 at step 20")
    assert "Sun et al." in lines[2] and "+25.00% of the clean 2.000" in lines[3]
    trajectory.loc[1, "top_ratio_to_median"] = 1001.0
    assert findings(trajectory, losses)["sun_criterion"] is True
