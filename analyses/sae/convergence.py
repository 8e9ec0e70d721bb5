"""Whether an SAE run converged (its loss flat at the end) or diverged (NaN/Inf, or growing).

Both read the per-step training loss without the auxiliary term (AuxK switches on when latents
die, which moves the total without the reconstruction changing).

- Still falling: over the last `window` = max(1, steps // 10) steps before the learning-rate
  decay begins, the mean loss is more than `tolerance` (2%) below the mean of the `window`
  steps before them (a run losing under 2% per tenth of its length is on its slow tail: the
  2,000-step default on 20,000 planted rows ends at 1.1%, explained variance 0.96; at lr
  4e-4 the same run ends at 24%, 0.94). The decay itself is left out: annealing the learning rate to 0 lowers
  the loss by a few percent even in a run that had settled (measured: 2-4% over the last 10%
  of a 2,000-step TopK run whose constant-rate loss had been flat for 800 steps), and a run
  that is still learning shows it before the decay. Without room for two windows before the
  decay, the last two windows of the run are compared; a run of fewer than 2 steps cannot be
  judged and counts as still falling.
- Diverged: a loss that is NaN/Inf, or a smoothed loss (exponential moving average, weight
  `smoothing` on the newest step) above `factor` x its lowest value so far. The warm-up is
  watched too: a learning rate far too large blows the loss up within the warm-up and keeps it
  there (ReLU at lr 1e4: from 10 to 1e29 by step 10, flat after), which a check that began
  after the warm-up would take for a converged run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

FALLING_TOLERANCE = 0.02


def convergence(
    losses: list[float], decay_steps: int = 0, tolerance: float = FALLING_TOLERANCE
) -> dict[str, Any]:
    """{"converged", "loss_still_falling", "loss_last", "loss_before", "loss_drop" (fraction
    the later window is below the one before), "window_steps", "window_end" (the step the
    later window ends at)} from every step's loss; the last `decay_steps` steps are the
    learning-rate decay (module docstring)."""
    total = len(losses)
    window = max(1, total // 10)
    n = total - decay_steps if total - decay_steps >= 2 * window else total
    if n < 2:
        return {
            "converged": False,
            "loss_still_falling": True,
            "loss_last": losses[-1] if losses else None,
            "loss_before": None,
            "loss_drop": None,
            "window_steps": window,
            "window_end": n,
        }
    last = sum(losses[n - window : n]) / window
    before = sum(losses[n - 2 * window : n - window]) / window
    drop = (before - last) / abs(before) if before != 0 else 0.0
    falling = drop > tolerance
    return {
        "converged": not falling,
        "loss_still_falling": falling,
        "loss_last": last,
        "loss_before": before,
        "loss_drop": drop,
        "window_steps": window,
        "window_end": n,
    }


def falling_message(result: dict[str, Any], total: int, batch_size: int) -> str:
    """The warning for a run that ended with its loss still falling."""
    if result.get("loss_drop") is None:
        measured = f"{total} step(s) are too few to tell whether the loss has settled"
    else:
        measured = (
            f"the mean loss over the {result['window_steps']} steps up to step "
            f"{result['window_end']} ({result['loss_last']:.4g}) is {100 * result['loss_drop']:.1f}% below the "
            f"{result['window_steps']} steps before ({result['loss_before']:.4g})"
        )
    return (
        f"SAE training ended with the loss still falling: {measured}; it is not converged. "
        f"Train longer (--steps or --epochs; this run took {total} steps of {batch_size} rows)"
    )


class Divergence:
    """Watches each step's loss; `check` returns why the run diverged, or None.

    `history`: the losses of the steps already run (a resumed run replays them)."""

    def __init__(
        self, factor: float, history: Sequence[float] = (), smoothing: float = 0.05
    ) -> None:
        self.factor, self.smoothing = factor, smoothing
        self.ema: float | None = None
        self.best = math.inf
        for value in history:
            self._update(value)

    def _update(self, value: float) -> None:
        a = self.smoothing
        self.ema = value if self.ema is None else (1 - a) * self.ema + a * value
        self.best = min(self.best, self.ema)

    def check(self, step: int, value: float) -> str | None:
        """None, or the reason step `step` (0-based) with loss `value` shows divergence."""
        if not math.isfinite(value):
            return f"the loss is {value}"
        self._update(value)
        assert self.ema is not None
        if self.best > 0 and self.ema > self.factor * self.best:
            return (
                f"the smoothed loss {self.ema:.4g} is over {self.factor:g}x its lowest value "
                f"so far ({self.best:.4g})"
            )
        return None
