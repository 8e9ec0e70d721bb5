"""`workbench sae prompt` end to end, through the `workbench` command.

The zoo finding (issue 24): with an SAE trained with the CLI's defaults on the zoo's toy-lm
(`toy_lm_sae`), a grammar-lm sentence about one topic has, among the prompt's top five latents,
one whose best-matching label (highest F1 in the SAE's feature report) is that topic. Measured
(2026-12-07, d_sae 1024, k 16): so for 66 of 80 first sentences of grammar-lm examples (seed
7); below, at least 10 of 16 must be. A latent at random would be topic-labelled with the right
value for about 1 in 16 (4 topics, a quarter of the latents' best labels topic ones).

The bad inputs run on a small SAE over the quick zoo's toy-lm: an empty prompt, a site or width
other than the SAE's, a latent or token out of range (each exit status 2 and a message naming
what is wrong), and a prompt longer than the context (cut, and said so).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench import zoo
from workbench.cli.main import main

SENTENCE = "in the professional court , he despised their player ."  # grammar-lm, topic 2
TOPIC = 2
SITE = "blocks.0.hook_resid_post"


def _is_topic(label: dict | None, value: int) -> bool:
    if not label:
        return False
    return label["name"] in ("topic", "example:topic") and label["value"] == value


@pytest.mark.slow
def test_a_topic_sentence_has_a_topic_latent_in_its_top_five(toy_lm_sae, capsys):
    sae = str(toy_lm_sae / "sae")
    assert main(["sae", "prompt", "--sae", sae, "--text", SENTENCE, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == ["<|endoftext|>", *SENTENCE.split()]
    assert out["site"] == "blocks.1.hook_resid_post" and out["truncated"] is None
    top = out["top"][:5]
    assert any(_is_topic(row.get("label"), TOPIC) for row in top), top
    for row in top:
        assert len(row["acts"]) == len(out["tokens"]) and max(row["acts"]) == row["max"] > 0
        assert row["link"] == {"page": "SAE_features", "features": f"{sae}/features",
                               "latent": row["latent"]}  # fmt: skip
    detail = out["token"]
    assert detail["units"] and all(len(u["up"]) == 8 == len(u["down"]) for u in detail["units"])
    assert detail["units"][0]["up"][0][1] >= detail["units"][0]["down"][0][1]

    assert main(["sae", "prompt", "--sae", sae, "--text", SENTENCE, "--token", "4"]) == 0
    table = capsys.readouterr().out
    assert "top latents of the prompt" in table and f"topic={TOPIC}" in table
    assert "token 4 'court':" in table and "pushes up:" in table


@pytest.mark.slow
def test_topic_latents_rank_high_on_most_topic_sentences(toy_lm_sae):
    from analyses.sae.prompt import sae_prompt
    from workbench.cli.commands import load_cli_model
    from workbench.data import load_dataset

    args = type("Args", (), {"device": "cpu", "dtype": "float32", "trust_remote_code": False,
                             "allow_download": False})()  # fmt: skip
    handle = load_cli_model(args, "toy-lm")
    hits = 0
    examples = load_dataset("grammar-lm", 16, seed=7)
    for example in examples:
        first = example.text.split(" . ")[0].rstrip(" .") + " ."
        view, _ = sae_prompt(toy_lm_sae / "sae", handle, first)
        value = example.labels["topic"]
        hits += any(_is_topic(view.labels.get(j), value) for j in view.top_units(5))
    assert hits >= 10, f"{hits} of {len(examples)}"


@pytest.fixture(scope="module")
def small_sae(quick_zoo, small_toy_sae, tmp_path_factory):
    """A small SAE (d_sae 64, 40 steps) on the quick zoo's toy-lm at `SITE`, with its feature
    report; and an SAE of width 32 trained on an array (no site, no model recorded)."""
    folder = tmp_path_factory.mktemp("prompt-sae")
    small_toy_sae(folder / "store", folder / "sae", SITE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(zoo.ZOO_ENV, str(quick_zoo))
        np.save(folder / "narrow.npy", np.random.default_rng(0).standard_normal((256, 32)))
        assert main(["sae", "train", "--acts", str(folder / "narrow.npy"), "--d-sae", "16",
                     "--k", "2", "--steps", "5", "--out", str(folder / "narrow")]) == 0  # fmt: skip
    return folder


@pytest.fixture
def quick(quick_zoo, monkeypatch):
    monkeypatch.setenv(zoo.ZOO_ENV, str(quick_zoo))


def test_bad_inputs_are_clear_errors(small_sae, quick, capsys):
    sae = str(small_sae / "sae")
    capsys.readouterr()
    cases = [
        (["--text", "  "], "the prompt is empty"),
        (["--text", "the cat", "--site", "blocks.2.hook_resid_post"],
         f"trained on site '{SITE}', not 'blocks.2.hook_resid_post'"),
        (["--text", "the dog", "--latent", "64"], r"latent 64 out of range [0, 64)"),
        (["--text", "the dog", "--token", "9"], "token 9 out of range"),
        (["--text", "the dog", "--example", "3"], "either a text or a dataset example"),
    ]  # fmt: skip
    for extra, message in cases:
        assert main(["sae", "prompt", "--sae", sae, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    narrow = str(small_sae / "narrow")
    assert main(["sae", "prompt", "--sae", narrow, "--text", "the dog", "--site", SITE]) == 2
    assert "records no model: pass --model" in capsys.readouterr().err
    argv = ["sae", "prompt", "--sae", narrow, "--model", "toy-lm", "--text", "the dog"]
    assert main([*argv, "--site", SITE]) == 2
    assert f"gives width 128 at site '{SITE}', the SAE was trained on width 32" in (
        capsys.readouterr().err
    )


def test_table_json_example_and_a_long_prompt(small_sae, quick, capsys):
    sae = str(small_sae / "sae")
    capsys.readouterr()
    assert main(["sae", "prompt", "--sae", sae, "--example", "0", "--latent", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["example labels"].keys() == {"topic", "sentiment"}
    assert out["features"] == str(Path(sae) / "features")
    assert 5 in [row["latent"] for row in out["top"]]  # pinned
    long = " ".join(["the dog ran ."] * 30)  # 121 tokens with the BOS, the context is 64
    assert main(["sae", "prompt", "--sae", sae, "--text", long, "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "note: the prompt has 121 tokens, more than the model's context of 64" in text
    assert "truncated to its first 64 tokens" in text and "  63 " in text and "  64 " not in text
