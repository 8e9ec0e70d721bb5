"""Curve families for training trajectories y(t) and a bounded, multi-start robust fitter.

The main family is Eq. 9 of "Hidden Dynamics of Massive Activations in Transformer Training"
(Gallego-Feliciano et al., arXiv:2508.03616v2):

    f(t) = A e^(-lambda x) log(x) + K,   x = gamma t + t0          (five parameters)

lambda = 0 is a pure logarithmic rise; lambda >> 0 an early peak. Its extremum (Eq. 10-13) is at
1 = lambda x log x, i.e. x* = 1 / (lambda W(1/lambda)) (W: Lambert's principal branch), so
t_peak = (x* - t0) / gamma; it is observable iff t_peak > 0 (a maximum when A > 0, a minimum
when A < 0). With lambda ~ 0 only A, t0/gamma and K + A log(gamma) are identifiable, so callers
should compare curves, R^2 and the peak time, not raw (gamma, t0, K) (METHODS.md 7.2).

For comparison: a power law `a (t + t0)^b + c` and a logistic `K + A / (1 + e^(-(t - tm)/s))`.

Fitting convention (the paper fits with scipy's trust-region-reflective `curve_fit` on
normalised data; the normalisation is not specified): t -> u = t / t_max and y -> v = y / |y|_max,
fit in (u, v), scale the parameters back. `scipy.optimize.least_squares(method="trf")` with
bounds (lambda >= 0, gamma > 0, t0 > 0 keep log(x) defined), a robust loss (`soft_l1` by
default) and several starts; each start sets the nonlinear parameters and solves the linear
ones (amplitude, offset) by ordinary least squares first (variable projection), then all
parameters are refined together. The start with the lowest robust cost wins. R^2 = 1 - SS_res /
SS_tot on the original scale.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InputError, WorkbenchError

Array = np.ndarray


def _explog(u: Array, p: Array) -> Array:
    a, lam, gamma, t0, k = p
    x = gamma * u + t0
    return a * np.exp(-lam * x) * np.log(x) + k


def _explog_basis(u: Array, q: Array) -> Array:
    lam, gamma, t0 = q
    x = gamma * u + t0
    return np.exp(-lam * x) * np.log(x)


def _explog_jac(u: Array, p: Array) -> Array:
    a, lam, gamma, t0, _ = p
    x = gamma * u + t0
    e = np.exp(-lam * x)
    log_x = np.log(x)
    slope = a * e * (1.0 / x - lam * log_x)  # df/dx
    return np.stack([e * log_x, -a * x * e * log_x, slope * u, slope, np.ones_like(u)], axis=1)


def explog_peak(params: dict[str, float]) -> float | None:
    """t_peak = (x* - t0) / gamma with x* = 1 / (lambda W(1/lambda)) (Eq. 10-13); None when
    lambda = 0 (monotone) or t_peak <= 0 (the extremum lies before training starts)."""
    from scipy.special import lambertw

    lam, gamma, t0 = params["lambda"], params["gamma"], params["t0"]
    if lam <= 1e-12 or gamma <= 0:
        return None
    w = float(np.real(lambertw(1.0 / lam)))
    x_star = 1.0 / (lam * w)
    t_peak = (x_star - t0) / gamma
    return float(t_peak) if t_peak > 0 else None


def _power(u: Array, p: Array) -> Array:
    a, b, t0, c = p
    return a * np.power(u + t0, b) + c


def _power_jac(u: Array, p: Array) -> Array:
    a, b, t0, _ = p
    z = u + t0
    zb = np.power(z, b)
    return np.stack([zb, a * zb * np.log(z), a * b * zb / z, np.ones_like(u)], axis=1)


def _power_basis(u: Array, q: Array) -> Array:
    b, t0 = q
    return np.power(u + t0, b)


def _logistic(u: Array, p: Array) -> Array:
    a, tm, s, k = p
    return k + a / (1.0 + np.exp(-(u - tm) / s))


def _logistic_jac(u: Array, p: Array) -> Array:
    a, tm, s, _ = p
    sig = 1.0 / (1.0 + np.exp(-(u - tm) / s))
    d = a * sig * (1.0 - sig)
    return np.stack([sig, -d / s, -d * (u - tm) / s**2, np.ones_like(u)], axis=1)


def _logistic_basis(u: Array, q: Array) -> Array:
    tm, s = q
    return 1.0 / (1.0 + np.exp(-(u - tm) / s))


@dataclass(frozen=True)
class CurveFamily:
    """One family y = f(u; p) in normalised coordinates.

    Parameters are ordered `names`; `jac(u, p)` is the analytic (n, n_params) Jacobian; `linear` are the indices of the amplitude and offset (f is
    `p[amp] * basis(u; q) + p[off]`, q the other parameters), which the fitter solves in closed
    form for every start. `scale_back(p, t_max, y_scale)` maps normalised parameters to the
    original units; `peak(params)` gives the extremum's time (original units) or None.
    """

    name: str
    names: tuple[str, ...]
    f: Callable[[Array, Array], Array]
    jac: Callable[[Array, Array], Array]
    basis: Callable[[Array, Array], Array]
    amp: int
    off: int
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    starts: tuple[tuple[float, ...], ...]  # values of the nonlinear parameters q
    scale_back: Callable[[Array, float, float], dict[str, float]]
    peak: Callable[[dict[str, float]], float | None]
    formula: str

    @property
    def n_params(self) -> int:
        return len(self.names)

    @property
    def nonlinear(self) -> list[int]:
        return [i for i in range(self.n_params) if i not in (self.amp, self.off)]


def _explog_back(p: Array, t_max: float, y_scale: float) -> dict[str, float]:
    a, lam, gamma, t0, k = (float(v) for v in p)
    return {"A": a * y_scale, "lambda": lam, "gamma": gamma / t_max, "t0": t0, "K": k * y_scale}


def _power_back(p: Array, t_max: float, y_scale: float) -> dict[str, float]:
    a, b, t0, c = (float(v) for v in p)
    return {"a": a * y_scale * t_max ** (-b), "b": b, "t0": t0 * t_max, "c": c * y_scale}


def _logistic_back(p: Array, t_max: float, y_scale: float) -> dict[str, float]:
    a, tm, s, k = (float(v) for v in p)
    return {"A": a * y_scale, "t_mid": tm * t_max, "s": s * t_max, "K": k * y_scale}


BIG = 1e4
FAMILIES: dict[str, CurveFamily] = {
    "exp-log": CurveFamily(
        name="exp-log",
        names=("A", "lambda", "gamma", "t0", "K"),
        f=_explog,
        jac=_explog_jac,
        basis=_explog_basis,
        amp=0,
        off=4,
        lower=(-BIG, 0.0, 1e-6, 1e-6, -BIG),
        upper=(BIG, 1e3, 1e5, 1e3, BIG),
        starts=tuple(itertools.product((0.0, 0.1, 1.0, 5.0), (1.0, 30.0, 1e3), (1.1,))),
        scale_back=_explog_back,
        peak=explog_peak,
        formula="A exp(-lambda x) log(x) + K, x = gamma t + t0",
    ),
    "power": CurveFamily(
        name="power",
        names=("a", "b", "t0", "c"),
        f=_power,
        jac=_power_jac,
        basis=_power_basis,
        amp=0,
        off=3,
        lower=(-BIG, -5.0, 1e-6, -BIG),
        upper=(BIG, 5.0, 10.0, BIG),
        starts=tuple(itertools.product((-1.0, -0.3, 0.3, 1.0), (1e-3, 0.01, 0.1))),
        scale_back=_power_back,
        peak=lambda params: None,
        formula="a (t + t0)^b + c",
    ),
    "logistic": CurveFamily(
        name="logistic",
        names=("A", "t_mid", "s", "K"),
        f=_logistic,
        jac=_logistic_jac,
        basis=_logistic_basis,
        amp=0,
        off=3,
        lower=(-BIG, -1.0, 1e-4, -BIG),
        upper=(BIG, 2.0, 10.0, BIG),
        starts=tuple(itertools.product((0.01, 0.1, 0.3, 0.6), (0.005, 0.05, 0.2))),
        scale_back=_logistic_back,
        peak=lambda params: None,
        formula="K + A / (1 + exp(-(t - t_mid) / s))",
    ),
}


@dataclass(frozen=True)
class CurveFit:
    """A fitted curve: parameters in original units, R^2, the extremum time and `predict`.

    `peak_step` is the curve's extremum in steps wherever it lies after step 0 (None when the
    curve is monotone for t > 0); `peak_in_range` says whether the data cover it (a fit with
    lambda ~ 1e-11 has a formal peak at ~1e12 steps, which is no peak in practice)."""

    family: str
    params: dict[str, float]
    r2: float
    rmse: float
    peak_step: float | None
    n_points: int
    normalised: tuple[float, ...]
    t_max: float
    y_scale: float

    @property
    def peak_in_range(self) -> bool:
        """True when the extremum falls inside the fitted steps (0 < t_peak <= last step)."""
        return self.peak_step is not None and self.peak_step <= self.t_max

    @property
    def extremum(self) -> str | None:
        """ "maximum" or "minimum" at `peak_step` (exp-log: the sign of A), None without one."""
        if self.peak_step is None:
            return None
        return "maximum" if self.params.get("A", 0.0) > 0 else "minimum"

    def predict(self, steps: Array) -> Array:
        """f(steps) in original units."""
        u = np.asarray(steps, dtype=np.float64) / self.t_max
        return FAMILIES[self.family].f(u, np.asarray(self.normalised)) * self.y_scale

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "formula": FAMILIES[self.family].formula,
            "params": self.params,
            "r2": self.r2,
            "rmse": self.rmse,
            "peak_step": self.peak_step,
            "peak_in_range": self.peak_in_range,
            "extremum": self.extremum,
            "n_points": self.n_points,
        }


def check_trajectory(steps: Any, values: Any, n_params: int) -> tuple[Array, Array]:
    """Validate and sort a trajectory; refuse NaN/Inf, negative steps, repeated steps and fewer
    points than the curve has parameters."""
    t = np.asarray(steps, dtype=np.float64).reshape(-1)
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    if t.shape != y.shape:
        raise InputError(f"steps ({t.size}) and values ({y.size}) differ in length")
    bad = ~(np.isfinite(t) & np.isfinite(y))
    if bad.any():
        raise InputError(
            f"trajectory has {int(bad.sum())} non-finite (NaN/Inf) entries at steps "
            f"{t[bad][:5].tolist()}; drop or fill them before fitting"
        )
    if t.size < n_params:
        raise InputError(
            f"{t.size} checkpoints for a {n_params}-parameter curve: need at least {n_params}"
        )
    if (t < 0).any():
        raise InputError(f"steps must be >= 0, got min {t.min()}")
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    if (np.diff(t) == 0).any():
        raise InputError(f"repeated steps in the trajectory: {np.unique(t[1:][np.diff(t) == 0])}")
    if t[-1] <= 0:
        raise InputError("every step is 0: a trajectory needs at least two distinct steps")
    return t, y


def fit_curve(
    steps: Any,
    values: Any,
    family: str = "exp-log",
    loss: str = "soft_l1",
    f_scale: float = 0.05,
) -> CurveFit:
    """Fit one family to a trajectory (steps, values) (see the module docstring).

    Args:
        steps: (n,) training steps >= 0. values: (n,) e.g. the max/median ratio of a layer.
        family: a key of FAMILIES ("exp-log", "power", "logistic").
        loss: scipy least_squares loss ("linear", "soft_l1", "huber", "cauchy", "arctan").
        f_scale: robust-loss scale in normalised units (y / |y|_max).
    """
    from scipy.optimize import least_squares

    if family not in FAMILIES:
        raise InputError(f"unknown curve family {family!r}; valid: {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    t, y = check_trajectory(steps, values, fam.n_params)
    t_max = float(t[-1])
    y_scale = float(np.abs(y).max()) or 1.0
    u, v = t / t_max, y / y_scale
    lower, upper = np.array(fam.lower), np.array(fam.upper)

    def solve(p0: Array, max_nfev: int) -> Any:
        try:
            sol = least_squares(
                lambda p: fam.f(u, p) - v,
                np.clip(p0, lower + 1e-12, upper - 1e-12),
                jac=lambda p: fam.jac(u, p),
                bounds=(lower, upper),
                method="trf",
                loss=loss,
                f_scale=f_scale,
                max_nfev=max_nfev,
            )
        except ValueError:  # residuals not finite at the start
            return None
        return sol if np.all(np.isfinite(sol.fun)) else None

    # every start briefly, then the three best to convergence
    scouts = [
        solve(p0, 60) for q in fam.starts if (p0 := _start(fam, u, v, np.array(q))) is not None
    ]
    ranked = sorted((s for s in scouts if s is not None), key=lambda s: s.cost)[:3]
    final = [s for s in (solve(r.x, 2000) for r in ranked) if s is not None]
    if not final:
        raise InputError(f"no start of the {family!r} fit gave finite residuals")
    best = min(final, key=lambda s: s.cost)
    fitted = fam.f(u, best.x) * y_scale
    ss_res = float(((y - fitted) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    params = fam.scale_back(best.x, t_max, y_scale)
    return CurveFit(
        family=family,
        params=params,
        r2=1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        rmse=float(np.sqrt(ss_res / len(y))),
        peak_step=fam.peak(params),
        n_points=len(y),
        normalised=tuple(float(p) for p in best.x),
        t_max=t_max,
        y_scale=y_scale,
    )


def _start(fam: CurveFamily, u: Array, v: Array, q: Array) -> Array | None:
    """Full parameter vector: nonlinear parameters q, amplitude and offset by least squares."""
    with np.errstate(all="ignore"):
        basis = fam.basis(u, q)
    if not np.all(np.isfinite(basis)):
        return None
    design = np.stack([basis, np.ones_like(basis)], axis=1)
    (amp, off), *_ = np.linalg.lstsq(design, v, rcond=None)
    p = np.empty(fam.n_params)
    p[fam.nonlinear] = q
    p[fam.amp], p[fam.off] = amp, off
    return p


def fit_families(
    steps: Any, values: Any, primary: str = "exp-log", compare: bool = True, **kwargs: Any
) -> dict[str, CurveFit]:
    """The `primary` family's fit (its refusals propagate) and, with `compare`, every other
    family's fit where it can be made (a family with more parameters than points is skipped)."""
    fits = {primary: fit_curve(steps, values, primary, **kwargs)}
    for name in FAMILIES if compare else ():
        if name != primary:
            try:
                fits[name] = fit_curve(steps, values, name, **kwargs)
            except InputError:
                continue
    return fits


def fit_layers(
    frame: pd.DataFrame, value: str = "ratio", family: str = "exp-log", n_grid: int = 200
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit `family` to each layer's trajectory of a tracked frame (columns layer, step and
    `value`, e.g. `track_series`' max/median `ratio`).

    Returns (fits, curves): fits has one row per layer with `r2`, `peak_step` and `note` (the
    family, or why that layer could not be fitted: its `r2` and `peak_step` are missing);
    curves has columns layer, step, fit: each fitted layer's curve at `n_grid` log-spaced steps
    from 1 to its last step plus its own steps (empty when no layer could be fitted)."""
    fits, curves = [], []
    for layer, group in frame.groupby("layer"):
        steps, values = group["step"].to_numpy(float), group[value].to_numpy(float)
        try:
            fit = fit_curve(steps, values, family)
        except WorkbenchError as exc:
            fits.append({"layer": layer, "r2": np.nan, "peak_step": None, "note": str(exc)})
            continue
        grid = np.unique(np.r_[np.geomspace(1, steps.max(), n_grid), steps])
        curves.append(pd.DataFrame({"layer": layer, "step": grid, "fit": fit.predict(grid)}))
        fits.append({"layer": layer, "r2": fit.r2, "peak_step": fit.peak_step, "note": fit.family})
    return pd.DataFrame(fits), pd.concat(curves) if curves else pd.DataFrame()
