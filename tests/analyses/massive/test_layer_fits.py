"""`analyses.massive.trajectory.fit_layers`: per-layer exp-log fits of a tracked frame recover a
planted curve and its peak, and a layer that cannot be fitted says why instead of failing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import lambertw

from analyses.massive.trajectory import fit_layers

STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000], float)
LAM, GAMMA, T0 = 0.05, 1e-2, 1.2  # f(t) = A e^(-lam x) log x + K, x = gamma t + t0


def planted_peak() -> float:
    x_star = 1.0 / (LAM * float(np.real(lambertw(1.0 / LAM))))  # Eq. 10-13
    return (x_star - T0) / GAMMA


def tracked() -> pd.DataFrame:
    x = GAMMA * STEPS + T0
    layers = [
        pd.DataFrame({"layer": layer, "step": STEPS, "ratio": a * np.exp(-LAM * x) * np.log(x) + 5})
        for layer, a in ((0, 20.0), (1, 40.0))
    ]
    short = pd.DataFrame({"layer": 2, "step": [0.0, 10.0], "ratio": [1.0, 2.0]})
    return pd.concat([*layers, short], ignore_index=True)


def test_planted_curves_are_recovered_and_a_short_layer_is_explained():
    fits, curves = fit_layers(tracked())
    fits = fits.set_index("layer")
    for layer in (0, 1):
        assert fits.loc[layer, "r2"] > 0.999 and fits.loc[layer, "note"] == "exp-log"
        assert fits.loc[layer, "peak_step"] == pytest.approx(planted_peak(), rel=0.05)
    assert np.isnan(fits.loc[2, "r2"]) and pd.isna(fits.loc[2, "peak_step"])
    assert "need at least 5" in fits.loc[2, "note"]
    assert set(curves["layer"]) == {0, 1}  # no curve for the layer that was not fitted
    grid = curves[curves["layer"] == 0]["step"].to_numpy()
    assert set(STEPS[STEPS >= 1]) <= set(grid) and grid.max() == STEPS.max()
    x = GAMMA * grid + T0
    truth = 20.0 * np.exp(-LAM * x) * np.log(x) + 5
    np.testing.assert_allclose(curves[curves["layer"] == 0]["fit"], truth, rtol=0.02)


def test_no_fittable_layer_gives_no_curves():
    fits, curves = fit_layers(pd.DataFrame({"layer": [0, 0], "step": [0, 1], "ratio": [1, 2]}))
    assert len(fits) == 1 and curves.empty
