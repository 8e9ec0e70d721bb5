"""What a verb prints where: the result alone on stdout under `--json` and `--quiet`, log lines
and the warnings' summary (each kind once, with its count) on stderr; the output flags work
before and after the verb."""

from __future__ import annotations

import json

import pytest

from workbench.cli.main import build_parser, main


@pytest.fixture(scope="module")
def small_store(neox_dir, tmp_path_factory):
    """Ten rows at four sites: too few for TwoNN, which warns once per site."""
    out = tmp_path_factory.mktemp("output") / "store"
    argv = ["capture", "--model", str(neox_dir), "--sites", "blocks.*.hook_resid_post"]
    argv += ["--text", "the cat sat on the mat", "--text", "a dog", "--out", str(out)]
    assert main([*argv, "--device", "cpu"]) == 0
    return out


def test_json_stdout_is_the_result_alone_and_warnings_are_summarised_once(small_store, capsys):
    capsys.readouterr()
    assert main(["analyze", "twonn", "--store", str(small_store), "--json"]) == 0
    out, err = capsys.readouterr()
    payload = json.loads(out)  # the whole of stdout parses: nothing else was printed there
    assert [r["analysis"] for r in payload] == ["twonn"] * 4
    notes = [line for line in err.splitlines() if "Eckmann-Ruelle" in line]
    assert len(notes) == 1, err  # four warnings that differ only in numbers: one line
    assert notes[0].strip().startswith("twonn: estimate ")
    assert notes[0].endswith("UserWarning, 4 times, numbers vary)")
    assert err.startswith("workbench analyze: warnings, each kind once")


def test_quiet_drops_the_log_lines_and_the_summary(small_store, capsys):
    capsys.readouterr()
    assert main(["analyze", "twonn", "--store", str(small_store), "--json", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 4 and err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--quiet", "--no-progress", "zoo", "list"],
        ["zoo", "list", "--quiet", "--no-progress"],
        ["--quiet", "zoo", "--no-progress", "list"],
    ],
)
def test_output_flags_before_or_after_the_verb(argv):
    args = build_parser().parse_args(argv)
    assert args.quiet is True and args.no_progress_all is True


def test_a_verbs_own_no_progress_is_kept_beside_the_global_one():
    capture = ["capture", "--model", "m", "--sites", "s", "--text", "t", "--out", "o"]
    parser = build_parser()
    args = parser.parse_args(capture)
    assert (args.no_progress, args.no_progress_all, args.quiet) == (False, False, False)
    args = parser.parse_args([*capture, "--no-progress"])
    assert (args.no_progress, args.no_progress_all) == (True, False)
    args = parser.parse_args(["--no-progress", *capture])
    assert (args.no_progress, args.no_progress_all) == (False, True)


def test_every_verb_runs_through_the_console():
    """Each verb has a `run`, so that `console.configure` can wrap it in a session."""
    parser = build_parser()
    for argv in (["info", "x"], ["sites", "m"], ["zoo", "list"], ["demo"], ["analyze"]):
        assert callable(parser.parse_args(argv).run), argv
