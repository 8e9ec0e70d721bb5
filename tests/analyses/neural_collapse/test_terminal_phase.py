"""The terminal phase of training (Papyan, Han & Donoho 2020) on the digits zoo, through
`workbench neural-collapse track` with its defaults: the summary on made-up sweeps, the verb on
a quick build, and the paper's four signatures on the full builds (slow)."""

import json

import pandas as pd
import pytest

from analyses.neural_collapse.demo import _phase_text
from analyses.neural_collapse.terminal import finding_lines, terminal_phase
from workbench import zoo
from workbench.cli.main import main


def sweep(values: dict[int, dict[str, float]], site: str = "act2") -> pd.DataFrame:
    """A sweep frame (the columns of `over_checkpoints`) from {step: {metric: value}}, with a
    shallower site (NC1 only, as without the classifier) whose numbers must not be read."""
    rows = []
    for step, metrics in values.items():
        rows.append({"checkpoint_step": step, "site": "act1", "metric": "nc1", "value": -1.0})
        for metric, value in metrics.items():
            rows.append({"checkpoint_step": step, "site": site, "metric": metric, "value": value})
    return pd.DataFrame(rows)


def test_terminal_phase_starts_at_the_first_checkpoint_without_errors():
    frame = sweep(
        {
            0: {"nc1": 1.0, "nc3": 2.0, "nc4": 0.9, "net_accuracy": 0.1},
            5: {"nc1": 0.2, "nc3": 0.3, "nc4": 0.01, "net_accuracy": 1.0},
            7: {"nc1": 0.3, "nc3": 0.2, "nc4": 0.0, "net_accuracy": 0.99},  # an error again
            50: {"nc1": 0.01, "nc3": 0.02, "nc4": 0.0, "net_accuracy": 1.0},
        }
    )
    summary = terminal_phase(frame.sample(frac=1.0, random_state=0))  # any row order
    assert summary["site"] == "act2" and summary["zero_error_step"] == 5
    assert (summary["first_step"], summary["last_step"], summary["terminal_steps"]) == (0, 50, 45)
    assert summary["metrics"]["nc1"] == {"first": 1.0, "zero_error": 0.2, "last": 0.01}
    assert summary["nc1_fall"] == pytest.approx(20.0)
    lines = finding_lines(summary)
    assert "zero error from epoch 5 to 50 (45 epochs); NC1 fell 20x" in lines[0]
    assert "NC1 Tr(Sw Sb+)/C: 1 (epoch 0) -> 0.2 (epoch 5) -> 0.01 (epoch 50)" in lines[1]
    text = _phase_text(summary)
    assert text == (
        "NC1 1 (epoch 0) -> 0.2 at zero training error (epoch 5) -> 0.01 (epoch 50, 20x "
        "lower), NC3 0.02, NC4 0"
    )


def test_no_terminal_phase_is_said_not_hidden():
    """Held-out rows (or a run that never fits): no checkpoint without errors, so no fall is
    reported, and the line says why."""
    frame = sweep({0: {"nc1": 1.0, "net_accuracy": 0.1}, 9: {"nc1": 0.5, "net_accuracy": 0.97}})
    summary = terminal_phase(frame)
    assert summary["zero_error_step"] is None and summary["nc1_fall"] is None
    assert summary["metrics"]["nc1"]["zero_error"] is None and summary["terminal_steps"] == 0
    assert finding_lines(summary)[0].startswith("no terminal phase at act2")
    assert "never at zero training error" in _phase_text(summary)
    bare = terminal_phase(sweep({0: {"nc1": 1.0}, 3: {"nc1": 0.4}}))  # no classifier metrics
    assert bare["zero_error_step"] is None and bare["metrics"]["nc1"]["last"] == 0.4


def test_terminal_phase_bad_input():
    from workbench.errors import InputError

    with pytest.raises(InputError, match="site 'fc9' is not in the sweep; valid: act1, act2"):
        terminal_phase(sweep({0: {"nc1": 1.0}}), site="fc9")
    with pytest.raises(InputError, match="no nc1 rows at site 'act2'"):
        terminal_phase(sweep({0: {"nc3": 1.0}}))
    with pytest.raises(InputError, match="no rows"):
        terminal_phase(pd.DataFrame(columns=["checkpoint_step", "site", "metric", "value"]))


@pytest.fixture(scope="module")
def quick_digits(built_once):
    """A zoo root with a quick (12-epoch) digits-mlp, shared by the test run."""
    return built_once("quick-digits-mlp", lambda root: zoo.build("digits-mlp", root, quick=True))


def test_track_verb_on_a_quick_build(quick_digits, tmp_path, capsys):
    """The verb's table, finding lines and saved result; JSON; the split and bad input."""
    args = ["neural-collapse", "track", "digits-mlp", "--zoo-root", str(quick_digits)]
    assert main([*args, "--steps", "0,5,last", "--out", str(tmp_path / "nc")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# digits-mlp, train split, site act2")
    assert "terminal phase at act2" in out or "no terminal phase at act2" in out
    assert "NC4 net vs nearest mean" in out and f"saved to {tmp_path / 'nc'}" in out
    from workbench.analysis.results import Result

    saved = Result.load(tmp_path / "nc")
    assert sorted(saved.frame.checkpoint_step.unique()) == [0, 5, 12]
    assert set(saved.frame.site) == {"act1", "act2"} and set(saved.frame.split) == {"train"}
    assert main([*args, "--steps", "first,last", "--split", "test", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["split"] == "test" and payload["site"] == "act2"
    assert (payload["first_step"], payload["last_step"]) == (0, 12)
    assert main([*args, "--steps", "7000"]) == 2
    assert "7000" in capsys.readouterr().err
    assert main([*args, "--sites", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_terminal_phase_signatures_on_the_digits_zoo(name, capsys):
    """Papyan et al.'s four signatures with the verb's defaults (training split, every
    checkpoint, the classifier's input) on the full zoo build (the zoo cache, which `workbench
    demo` fills; built here if missing). Measured (seed 0; datasets/zoo-digits.md): zero
    training error at epoch 7 of 200 for both; from there to the end NC1 falls 15.8x (MLP,
    0.129 -> 0.0082) and 22.8x (CNN, 0.115 -> 0.0051), NC3 ~17x, the NC2 measures 3-8x, and
    NC4 is 0."""
    assert main(["neural-collapse", "track", name, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    nc = summary["metrics"]
    assert summary["split"] == "train" and summary["site"] == {"digits-mlp": "act2"}.get(
        name, "act3"
    )
    # the terminal phase: zero training error early, then most of the run
    assert summary["zero_error_step"] is not None and summary["zero_error_step"] <= 20
    assert summary["terminal_steps"] >= 150
    # NC1: at least an order of magnitude below its value at zero training error
    assert summary["nc1_fall"] >= 10 and nc["nc1"]["first"] > 5 * nc["nc1"]["zero_error"]
    # NC2: class means and classifier rows become equinorm and equiangular (at the simplex
    # angle): each measure at most half its value at zero error
    for key in ("nc2_equinorm", "nc2_equiangular", "nc2_max_angle"):
        assert nc[key]["last"] < 0.5 * nc[key]["zero_error"], key
    for key in ("nc2_equinorm_weights", "nc2_max_angle_weights"):
        assert nc[key]["last"] < 0.5 * nc[key]["zero_error"], key
    # NC3: the classifier aligns with the centred class means (self-duality)
    assert nc["nc3"]["last"] < 0.1 * nc["nc3"]["zero_error"] and nc["nc3"]["last"] < 0.02
    # NC4: the network's decision is the nearest class mean's
    assert nc["nc4"]["last"] <= 1e-3 and nc["nc4"]["first"] > 0.5


def test_demo_step_remeasures_results_of_an_older_recipe(tmp_path, monkeypatch):
    """A saved sweep measured on an older build of the recipe is measured again; a current
    one is kept; the summary line carries the terminal phase."""
    import analyses.neural_collapse.analyses as nc
    from analyses.neural_collapse.demo import demo_step
    from workbench.analysis.results import Result

    version = zoo.get_recipe("digits-mlp").version
    frame = sweep(
        {
            0: {"nc1": 1.0, "nc3": 2.0, "nc4": 0.9, "net_accuracy": 0.1},
            7: {"nc1": 0.1, "nc3": 0.2, "nc4": 0.0, "net_accuracy": 1.0},
            200: {"nc1": 0.005, "nc3": 0.01, "nc4": 0.0, "net_accuracy": 1.0},
        }
    )
    folder = tmp_path / "results" / "neural-collapse"
    Result("neural-collapse", frame, provenance={"recipe_version": version - 1}).save(
        folder / "digits-mlp-epochs"
    )
    Result("neural-collapse", frame, provenance={"recipe_version": version}).save(
        folder / "digits-cnn-epochs"
    )
    calls = []

    def measured(name, **kwargs):
        calls.append(name)
        return Result("neural-collapse", frame, provenance={"recipe_version": version})

    monkeypatch.setattr(nc, "over_checkpoints", measured)
    line = demo_step(tmp_path, None, "cpu")
    assert calls == ["digits-mlp"]
    assert Result.load(folder / "digits-mlp-epochs").provenance["recipe_version"] == version
    assert line.startswith("neural collapse (train split): digits-mlp NC1 1 (epoch 0) -> 0.1 at")
    assert "(epoch 200, 20x lower), NC3 0.01, NC4 0; digits-cnn NC1" in line
