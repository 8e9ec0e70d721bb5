"""`workbench codebook steer DIR --topic T` on the zoo's toy-lm: the codes most associated with
a grammar-lm topic steer generations toward it more than as many random codes do; grouped
codebooks (`--groups`) train and report purity per group; bad topics, groups and codes are
clear errors (issue 24)."""

from __future__ import annotations

import json

import pytest

from workbench.cli.main import main as _main

TOPICS = ("animals", "food", "sports", "weather")


def _json(capsys, args: list[str]) -> dict:
    assert _main(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
@pytest.mark.parametrize("topic", ["animals", "food"])
def test_topic_codes_steer_more_than_random_codes(grouped_toy, capsys, topic) -> None:
    args = ["codebook", "steer", str(grouped_toy), "--topic", topic]
    if topic == "animals":
        out = _json(capsys, [*args, "--json"])
    else:  # the table: one `key: value` line each, the summary in words
        assert _main(args) == 0
        lines = capsys.readouterr().out.splitlines()
        out = {k: json.loads(v) for k, _, v in (line.partition(": ") for line in lines)}
        assert f"'{topic}'" in out["summary"] and "random codes" in out["summary"]
    assert out["topic"] == topic and len(out["codes"]) == 3
    draws = out["random"]["draws"]
    assert len(draws) == 5 and all(len(d["codes"]) == 3 for d in draws)
    assert not set(out["codes"]) & {c for d in draws for c in d["codes"]}
    assert out["n_topic_words"] > 0
    assert out["shift"] > out["random"]["shift_mean"] + 0.3, out
    assert out["forced_on_topic"] > 0.5 and out["beats_random"], out


@pytest.mark.slow
def test_grouped_codebooks_report_purity_per_group(tmp_path, capsys) -> None:
    out = str(tmp_path / "g4")
    args = ["codebook", "train", "--groups", "4", "--n-codes", "200", "--steps", "30",
            "--n-train", "200", "--n-eval", "50", "--out", out, "--json"]  # fmt: skip
    assert _json(capsys, args)["groups"] == 4
    codes = _json(capsys, ["codebook", "codes", out, "--label", "state", "--json"])
    assert (codes["groups"], codes["codes_per_group"]) == (4, 200)
    assert codes["statistics"][0]["active_codes"] + codes["statistics"][0]["dead_codes"] == 800
    site = codes["purity"]["blocks.1.hook_resid_post"]
    groups = site["groups"]
    assert [g["group"] for g in groups] == [0, 1, 2, 3]
    assert all(0.1 < g["mean_precision"] <= 1 and g["n_labels"] == 100 for g in groups), groups
    # each group reads a quarter of the dims: no group alone beats the codes of all four
    assert max(g["mean_precision"] for g in groups) <= site["mean_precision"] + 1e-9
    assert len({round(g["mean_precision"], 6) for g in groups}) > 1
    print(site)


@pytest.mark.slow
def test_bad_topic_groups_and_codes(grouped_toy, tmp_path, capsys) -> None:
    assert _main(["codebook", "steer", str(grouped_toy), "--topic", "dragons"]) == 2
    assert "unknown topic 'dragons'; valid topics: animals, food, sports, weather" in (
        capsys.readouterr().err
    )
    assert _main(["codebook", "steer", str(grouped_toy), "--prompt", "the", "--on", "4000"]) == 2
    assert "code index 4000 does not exist; valid codes are 0..3999" in capsys.readouterr().err
    args = ["codebook", "train", "--groups", "5", "--n-codes", "16", "--steps", "1",
            "--n-train", "10", "--n-eval", "5", "--out", str(tmp_path / "g5")]  # fmt: skip
    assert _main(args) == 2
    err = capsys.readouterr().err
    assert "groups=5 does not divide the site's width d=64" in err and "1, 2, 4, 8" in err
    assert not (tmp_path / "g5" / "codebook.json").exists()


def test_a_topic_steer_without_an_upward_shift_is_not_a_finding():
    """The summary's reason when a topic's codes did not steer: no upward shift (with the
    codebooks' own share when they already give the topic), or a random draw as strong."""
    from analyses.codebook.cli import _no_steer

    room = _no_steer({"shift": -0.02, "codebooks_on_topic": 0.87})
    assert room == "; no upward shift: not steered (the codebooks alone already give 0.87 on it)"
    assert _no_steer({"shift": 0.0, "codebooks_on_topic": 0.0}) == "; no upward shift: not steered"
    assert "do not beat the random control" in _no_steer({"shift": 0.3, "codebooks_on_topic": 0.1})
