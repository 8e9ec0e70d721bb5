"""`massive-fit`: the five-parameter curve recovers synthetic trajectories (R^2 > 0.99, peak
within 5%), the peak formula against a brute-force argmax, the families, refusals, the CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from analyses.massive.analyses import FitParams, fit_trajectories, read_trajectory
from analyses.massive.trajectory import FAMILIES, explog_peak, fit_curve, fit_families
from workbench.cli.main import main
from workbench.errors import InputError

# Pythia's schedule: 0, 1, 2, 4, ..., 512, then every 1000 (here every 4000) to 143000
STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, *range(1000, 143001, 4000)], float)


def explog(t, a, lam, gamma, t0, k):
    x = gamma * t + t0
    return a * np.exp(-lam * x) * np.log(x) + k


def test_peak_formula_matches_brute_force_argmax():
    t = np.linspace(0, 20000, 2_000_001)
    for lam, gamma, t0 in [(0.05, 1e-3, 1.2), (0.5, 1e-2, 1.05), (0.01, 2e-3, 2.0)]:
        brute = t[np.argmax(explog(t, 1.0, lam, gamma, t0, 0.0))]
        assert explog_peak({"lambda": lam, "gamma": gamma, "t0": t0}) == pytest.approx(
            brute, abs=0.02
        )
    assert explog_peak({"lambda": 0.0, "gamma": 1.0, "t0": 1.0}) is None  # pure log: monotone
    assert explog_peak({"lambda": 2.0, "gamma": 1.0, "t0": 5.0}) is None  # peak before t = 0


@pytest.mark.parametrize(
    "true",
    [
        (100.0, 0.05, 1e-3, 1.2, 5.0),  # early peak at ~7870 steps
        (40.0, 0.3, 2e-2, 1.1, 10.0),  # very early peak
        (-30.0, 0.02, 3e-4, 1.5, 80.0),  # a dip (A < 0)
    ],
)
def test_recovers_synthetic_trajectory(true):
    y = explog(STEPS, *true)
    noisy = y * (1 + 0.005 * np.random.default_rng(0).standard_normal(len(y)))
    fit = fit_curve(STEPS, noisy)
    assert fit.r2 > 0.99
    peak = explog_peak(dict(zip(("A", "lambda", "gamma", "t0", "K"), true, strict=True)))
    assert fit.peak_step == pytest.approx(peak, rel=0.05)
    assert fit.peak_in_range
    grid = np.linspace(0, STEPS[-1], 500)
    assert np.max(np.abs(fit.predict(grid) - explog(grid, *true))) < 0.05 * np.abs(y).max()


def test_log_rise_has_no_peak_in_range_and_curves_agree():
    """lambda = 0: only A, t0/gamma, K + A log gamma are identifiable; compare curves."""
    y = 30 * np.log(2e-3 * STEPS + 1.5) + 3
    fit = fit_curve(STEPS, y)
    assert fit.r2 > 0.999
    assert not fit.peak_in_range
    np.testing.assert_allclose(fit.predict(STEPS), y, rtol=1e-3, atol=1e-3)


def test_other_families_recover_their_own_curves():
    t = STEPS
    power = 3.0 * (t + 50.0) ** 0.4 + 2.0
    logistic = 5.0 + 20.0 / (1 + np.exp(-(t - 40000.0) / 8000.0))
    assert fit_curve(t, power, "power").r2 > 0.999
    fit = fit_curve(t, logistic, "logistic")
    assert fit.r2 > 0.999
    assert fit.params["t_mid"] == pytest.approx(40000.0, rel=0.01)
    fits = fit_families(t, explog(t, 100.0, 0.05, 1e-3, 1.2, 5.0))
    assert set(fits) == set(FAMILIES)
    assert fits["exp-log"].r2 > max(fits["power"].r2, fits["logistic"].r2)  # a peak


def test_refusals():
    with pytest.raises(InputError, match="4 checkpoints for a 5-parameter curve"):
        fit_curve([0, 1, 2, 3], [1.0, 2.0, 3.0, 2.0])
    with pytest.raises(InputError, match="non-finite"):
        fit_curve(STEPS, np.where(STEPS == 64, np.nan, 1.0 + STEPS))
    with pytest.raises(InputError, match="repeated steps"):
        fit_curve([0, 1, 1, 2, 3, 4], [1, 2, 3, 4, 5, 6])
    with pytest.raises(InputError, match="valid: exp-log, power, logistic"):
        fit_curve(STEPS, STEPS, "cubic")
    with pytest.raises(InputError, match="lacks columns"):
        read_trajectory(pd.DataFrame({"step": [1, 2]}))
    with pytest.raises(InputError, match=r"\(n, 2\)"):
        read_trajectory(np.zeros((5, 4)))


def test_per_layer_from_csv_and_parquet(tmp_path):
    frame = pd.concat(
        [
            pd.DataFrame(
                {"step": STEPS, "value": explog(STEPS, a, 0.05, 1e-3, 1.2, 5.0), "layer": i}
            )
            for i, a in enumerate((50.0, 100.0))
        ]
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for path in (tmp_path / "t.csv", tmp_path / "t.parquet"):
        result = fit_trajectories(path, FitParams(compare=False))
        assert [entry["layer"] for entry in result.headline["layers"]] == [0, 1]
        assert result.headline["mean_r2"] > 0.999
        assert set(result.frame["family"]) == {"exp-log"}


def test_cli_json_and_refusal(tmp_path, capsys):
    y = explog(STEPS, 100.0, 0.05, 1e-3, 1.2, 5.0)
    np.save(tmp_path / "traj.npy", np.stack([STEPS, y], axis=1))
    assert main(["analyze", "massive-fit", "--acts", str(tmp_path / "traj.npy"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["r2"] > 0.99 and out["peak_step"] == pytest.approx(7870.28, rel=0.01)
    assert set(out["layers"][0]["comparison"]) == {"exp-log", "power", "logistic"}
    np.save(tmp_path / "short.npy", np.stack([STEPS[:3], y[:3]], axis=1))
    assert main(["analyze", "massive-fit", "--acts", str(tmp_path / "short.npy")]) == 2
    assert "3 checkpoints for a 5-parameter curve" in capsys.readouterr().err


def test_cli_reads_a_csv_trajectory(tmp_path, capsys):
    import json

    import numpy as np
    import pandas as pd

    from workbench.cli.main import main

    steps = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000], float)
    x = 0.01 * steps + 1.5
    values = 3 * np.exp(-0.5 * x) * np.log(x) + 1
    pd.DataFrame({"step": steps, "value": values}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["analyze", "massive-fit", "--acts", str(tmp_path / "t.csv"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    x_peak = payload["peak_step"] * 0.01 + 1.5
    assert payload["r2"] > 0.999
    assert 0.5 * x_peak * np.log(x_peak) == pytest.approx(1.0, rel=1e-3)  # 1 = lambda x log x
