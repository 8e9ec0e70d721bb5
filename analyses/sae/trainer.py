"""Train an SAE on rows from an array or a store: shuffled batches, Adam with warm-up and
linear decay, gradient clipping, dead-latent tracking, checkpoints that resume exactly, and a
JSONL progress log the app can follow.

Run layout (`out`):
- `train_log.jsonl`: one JSON object per line, appended and flushed as training goes:
  {"event": "start" | "step" | "checkpoint" | "done", "step", "tokens", "time_s", ...}; step
  lines carry the loss parts, the batch L0 and batch explained variance (one batch's, for
  progress only), dead_fraction (latents silent for `dead_window_tokens`), lr, tokens_per_s;
- `checkpoint/`: the unfolded weights, Adam state and trainer state (written to
  `checkpoint.tmp` and renamed, so a crash leaves the previous checkpoint whole);
- the final SAE (`sae.safetensors` + `config.json`, `analyses.sae.io`), with the input scale
  folded in so that it takes raw activations.

Data order (`analyses.sae.stream.choose_order`; recorded in the checkpoint, and a resume with
another order is refused):
- "permutation": epoch e reads the rows in `np.random.default_rng(seed + e).permutation`
  order, batch by batch (`analyses.sae.data.RowSource`), from an array or gathered from a
  store's memory maps. Used for arrays, and for stores when no memory cap is given and the
  site's float32 rows fit in a quarter of the available memory;
- "buffered": a shuffle buffer over windows of store rows read from disk with plain reads
  (`analyses.sae.stream.BufferedOrder`), sized from `memory_cap`: resident memory stays flat
  in the store's size. Used for stores whenever a cap is given, and for store sites larger
  than a quarter of the available memory (then under a cap of that quarter).
A resumed run restarts at the saved (epoch, batch) without reading the rows before it, so
resuming gives the same weights as an uninterrupted run (tested, kill -9 included).

Length, rate and health (issue 22; `TrainConfig.plan`): unset, the batch, the number of steps
(at least `min_steps`, the rows repeating), the peak learning rate and the dead window follow
the number of rows; dead latents are resampled (`analyses.sae.resample`) until half the run is
done; a run whose loss is still falling before the decay is reported not converged
(`analyses.sae.convergence`), and one whose loss turns NaN/Inf or grows 5x stops with an
InputError and writes no final SAE.

Input normalisation: "expected_norm" scales rows by s = sqrt(d_in) / E||x|| (estimated on up
to `norm_sample_rows` shuffled rows), SAELens's "expected_average_only_in" (Anthropic, April
2024 update); "unit_mean_sq" by s = 1 / sqrt(E||x||^2) (unit mean squared norm, the scale of
JumpReLU's thresholds); `SparseAutoencoder.fold_input_scale` folds s into the saved weights.
Unset (`TrainConfig.normalize` None), each architecture chooses (`default_normalize`):
JumpReLU "unit_mean_sq", the others "none".
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analyses.sae.base import SparseAutoencoder
from analyses.sae.convergence import Divergence, convergence, falling_message
from analyses.sae.data import RowSource, as_row_source
from analyses.sae.io import (
    CONFIG,
    WEIGHTS,
    _load_tensors,
    _write_json,
    _write_tensors,
    save_sae,
    state_tensors,
)
from analyses.sae.registry import build_sae, make_config
from analyses.sae.resample import resample_dead
from analyses.sae.stream import BufferedOrder, PermutationOrder, choose_order, parse_memory
from workbench import console
from workbench.errors import InputError

log = logging.getLogger(__name__)

LOG_NAME = "train_log.jsonl"
CHECKPOINT = "checkpoint"
NORMALIZATIONS = ("none", "expected_norm", "unit_mean_sq")
B_DEC_INITS = ("mean", "zeros")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    The run's length follows the data unless set (`plan`): see `batch_for`, `total_steps`
    and `dead_window_for`.

    Attributes:
        batch_size: rows per step; None: min(4096, max(64, n_rows // 64)) (`batch_for`).
        epochs: passes over the data (fractional allowed) when `n_steps` is None; None: as
            many as `min_steps` steps need (at least one pass).
        n_steps: total optimiser steps (overrides `epochs` and `min_steps`).
        min_steps: the fewest optimiser steps a run with neither `n_steps` nor `epochs` set
            takes (the data is repeated to reach it).
        lr: peak Adam learning rate; None: 2e-3 up to 2,000 steps, then
            2e-3 * sqrt(2000 / steps), at least 4e-4 (`lr_for`).
        betas, eps: Adam's (eps 6.25e-10 as Gao et al. 2024).
        warmup_steps: linear warm-up from lr / warmup_steps to lr, over at most a tenth of
            the run's steps.
        decay_fraction: linear decay to 0 over the last fraction of the steps (0: constant).
        grad_clip: max global gradient norm (0: off).
        dead_window_tokens: a latent that has not fired for this many rows is dead (AuxK);
            None: min(1,000,000, max(batch, n_rows // 2)) (`dead_window_for`).
        resample: re-initialise dead latents (`analyses.sae.resample`) every dead window
            (in steps: ceil(dead window / batch)) until `resample_until` of the steps are
            done, for every architecture (TopK's AuxK cannot revive a latent whose pre-
            activations are all negative; resampling does).
        divergence_factor: a run whose smoothed loss, after the warm-up, exceeds this many
            times its lowest smoothed loss (or becomes NaN/Inf) stops with an InputError
            (`analyses.sae.convergence`).
        normalize: "none", "expected_norm" or "unit_mean_sq" (module docstring); None: the
            architecture's `default_normalize` ("unit_mean_sq" for JumpReLU, whose threshold
            and STE bandwidth are in pre-activation units; "none" for the others).
        b_dec_init: "mean" (mean of a sample of rows) or "zeros".
        checkpoint_every: steps between checkpoints (0: only at the end of a run).
        log_every: steps between log lines.
        seed: data order and sampling seed (weights: the SAE config's seed).
        memory_cap: bytes (a size like "512MiB" or "2GiB" is converted to bytes) that the
            trainer's data and model may use (`analyses.sae.stream`: two shuffle buffers,
            one batch's tensors, the SAE with its gradients and Adam moments; not the
            Python/torch runtime). With a store the rows stream through a shuffle buffer
            sized from the cap; a cap too small for one batch plus the SAE is an InputError
            naming the smallest that works. None: arrays train from memory; stores stream
            only when the site's float32 rows exceed a quarter of the available memory.
    """

    batch_size: int | None = None
    epochs: float | None = None
    n_steps: int | None = None
    min_steps: int = 2000
    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 6.25e-10
    warmup_steps: int = 50
    decay_fraction: float = 0.2
    grad_clip: float = 1.0
    dead_window_tokens: int | None = None
    resample: bool = True
    resample_until: float = 0.5
    divergence_factor: float = 5.0
    normalize: str | None = None
    norm_sample_rows: int = 16384
    b_dec_init: str = "mean"
    checkpoint_every: int = 0
    log_every: int = 10
    seed: int = 0
    memory_cap: str | int | None = None

    def __post_init__(self) -> None:
        if self.memory_cap is not None:  # bytes, so "512MiB" and "512 MiB" are one setting
            object.__setattr__(self, "memory_cap", parse_memory(self.memory_cap))
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.n_steps is not None and self.n_steps < 1:
            raise InputError(f"n_steps must be >= 1, got {self.n_steps}")
        if self.epochs is not None and not self.epochs > 0:
            raise InputError(f"epochs must be > 0, got {self.epochs}")
        if self.min_steps < 1:
            raise InputError(f"min_steps must be >= 1, got {self.min_steps}")
        if self.lr is not None and (not self.lr > 0 or not math.isfinite(self.lr)):
            raise InputError(f"lr must be a finite number > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise InputError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.dead_window_tokens is not None and self.dead_window_tokens < 1:
            raise InputError(f"dead_window_tokens must be >= 1, got {self.dead_window_tokens}")
        if not 0 <= self.resample_until <= 1:
            raise InputError(f"resample_until must be in [0, 1], got {self.resample_until}")
        if not self.divergence_factor > 1:
            raise InputError(f"divergence_factor must be > 1, got {self.divergence_factor}")
        if not 0 <= self.decay_fraction <= 1:
            raise InputError(f"decay_fraction must be in [0, 1], got {self.decay_fraction}")
        if self.normalize is not None and self.normalize not in NORMALIZATIONS:
            raise InputError(
                f"normalize {self.normalize!r} is not one of {', '.join(NORMALIZATIONS)}"
            )
        if self.b_dec_init not in B_DEC_INITS:
            raise InputError(
                f"b_dec_init {self.b_dec_init!r} is not one of {', '.join(B_DEC_INITS)}"
            )

    def batch_for(self, n_rows: int) -> int:
        """Rows per step: `batch_size`, or min(4096, max(64, n_rows // 64)): 64 or more batches
        per pass over the data (so a small set gets many steps, not five), batches of at least
        64 rows (each step's gradient averages enough rows for Adam), and 4096 (Gao et al.,
        SAELens) once the data has 262,144 rows."""
        if self.batch_size is not None:
            return self.batch_size
        return min(4096, max(64, n_rows // 64))

    def total_steps(self, n_rows: int) -> int:
        """Optimiser steps: `n_steps`; else ceil(epochs * n_rows / batch); else the larger of
        one pass and `min_steps` (the data repeated as often as needed)."""
        if self.n_steps is not None:
            return self.n_steps
        batch = self.batch_for(n_rows)
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * n_rows / batch))
        return max(self.min_steps, math.ceil(n_rows / batch))

    def dead_window_for(self, n_rows: int) -> int:
        """Rows without firing after which a latent counts as dead (and AuxK trains it):
        `dead_window_tokens`, or min(1,000,000, max(batch, n_rows // 2)): half a pass over the
        data, so that on a small set the auxiliary loss starts long before the run ends (a
        fixed 1,000,000 is never reached by 20,000 rows x 2,000 steps of 64)."""
        if self.dead_window_tokens is not None:
            return self.dead_window_tokens
        return min(1_000_000, max(self.batch_for(n_rows), n_rows // 2))

    def lr_for(self, total: int) -> float:
        """Peak learning rate of a run of `total` steps: `lr`, or max(4e-4, 2e-3 x
        sqrt(2000 / total)): 2e-3 for the 2,000-step minimum, falling as 1/sqrt(steps) to
        4e-4 (Gao et al. 2024's scale, our former fixed default) from 50,000 steps. Measured
        on 20,000 planted rows (d 48, TopK k 6, 2,000 steps of 312): lr 4e-4 ends with the
        loss still falling 24% per tenth of the run (explained variance 0.944), 1e-3 2.6%,
        2e-3 0.4% (0.960). Shorter runs (only when `n_steps`/`epochs` ask for them) keep 2e-3:
        a rate that grew as the run shrank would reach 3e-2 at 8 steps."""
        if self.lr is not None:
            return self.lr
        return min(2e-3, max(4e-4, 2e-3 * math.sqrt(2000 / total)))

    def warmup_for(self, total: int) -> int:
        """Warm-up steps of a run of `total`: `warmup_steps`, at most a tenth of the run."""
        return min(self.warmup_steps, total // 10)

    def plan(self, n_rows: int) -> dict[str, Any]:
        """The settings a run on `n_rows` rows uses (the derived ones resolved)."""
        total = self.total_steps(n_rows)
        batch = self.batch_for(n_rows)
        return {
            "batch_size": batch,
            "total_steps": total,
            "epochs": total * batch / n_rows,
            "warmup_steps": self.warmup_for(total),
            "lr": self.lr_for(total),
            "dead_window_tokens": self.dead_window_for(n_rows),
        }

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of optimiser step `step` (0-based) of `total`: linear warm-up over
        `warmup_for(total)` steps, linear decay to 0 over the last `decay_fraction` of them
        (SAELens's `lr_warm_up_steps` and `lr_decay_steps`)."""
        lr = self.lr_for(total)
        warmup = self.warmup_for(total)
        if warmup > 0 and step < warmup:
            lr *= (step + 1) / warmup
        decay_steps = int(self.decay_fraction * total)
        if decay_steps > 0 and step >= total - decay_steps:
            lr *= (total - step) / decay_steps
        return lr


@dataclass
class TrainState:
    """Where a run is: the next step, its place in the data, and per-latent silence."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens: int = 0
    input_scale: float = 1.0
    elapsed_s: float = 0.0
    resampled: int = 0


class _Log:
    """Append-only JSONL log, flushed per line (the app tails it)."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "a")  # noqa: SIM115 (closed in close())

    def write(self, **record: Any) -> None:
        self._fh.write(json.dumps(record, default=float) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a `train_log.jsonl` (a directory or the file); a torn last line is
    skipped (the trainer may be writing it)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_NAME
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def _estimate_scale(
    source: RowSource, order: PermutationOrder | BufferedOrder, config: TrainConfig, normalize: str
) -> tuple[float, np.ndarray]:
    """(input scale s, mean row of the sample) from up to `norm_sample_rows` shuffled rows."""
    rng = np.random.default_rng(config.seed + 1_000_003)
    n = min(source.n_rows, config.norm_sample_rows)
    rows = np.sort(rng.choice(source.n_rows, size=n, replace=False))
    sample = order.read_rows(rows).astype(np.float64)
    scale = 1.0
    if normalize == "expected_norm":
        mean_norm = float(np.linalg.norm(sample, axis=1).mean())
        if mean_norm == 0:
            raise InputError("every sampled row is zero: cannot normalise the inputs")
        scale = math.sqrt(source.d_in) / mean_norm
    elif normalize == "unit_mean_sq":
        mean_sq = float((sample**2).sum(axis=1).mean())
        if mean_sq == 0:
            raise InputError("every sampled row is zero: cannot normalise the inputs")
        scale = 1 / math.sqrt(mean_sq)
    return scale, sample.mean(axis=0) * scale


def train(
    sae: SparseAutoencoder,
    data: Any,
    out: str | Path,
    config: TrainConfig | None = None,
    site: str | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train `sae` on `data` (an (n, d_in) array or tensor, a `RowSource`, or a store with
    `site`), writing the run into `out` (module docstring). With `resume` and a checkpoint in
    `out` (from the same settings), training continues from it. `stop_after` ends this call
    after that many steps of the run (a checkpoint is written; a later call resumes).

    Returns {"steps", "tokens", "done", "tokens_per_s", "path", "batch_size", "total_steps",
    "epochs"} and, when done, the convergence check (`analyses.sae.convergence`: "converged",
    "loss_still_falling", the two window means; a warning on stderr when still falling); `sae`
    holds the trained, unfolded weights (the saved copy has the input scale folded in).

    A loss that becomes NaN/Inf, or grows past `divergence_factor` x its lowest smoothed value,
    stops the run with an InputError naming the step and --lr; the log
    ends with a "diverged" record and no final SAE is written (an earlier run's final SAE in
    `out` is removed when a fresh run starts, so nothing there reads as this run's result).
    """
    config = config or TrainConfig()
    source = as_row_source(data, site)
    if source.d_in != sae.d_in:
        raise InputError(
            f"the activations have width {source.d_in} but the SAE has d_in = {sae.d_in}"
            + (f" (site {source.site!r})" if source.site else "")
        )
    if source.n_rows == 0:
        raise InputError("no rows to train on")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = {**config.plan(source.n_rows), "normalize": config.normalize or sae.default_normalize}
    total, batch_size = plan["total_steps"], plan["batch_size"]
    dead_window = plan["dead_window_tokens"]
    resample_steps = max(1, math.ceil(dead_window / batch_size))
    ckpt = out / CHECKPOINT
    saved = _saved_settings(ckpt) if resume else None
    order = choose_order(
        source,
        None if config.memory_cap is None else parse_memory(config.memory_cap),
        batch_size,
        sae.d_sae,
        sum(p.numel() for p in sae.parameters()),
        saved=(saved or {}).get("data", {}).get("order"),
    )
    settings = {
        "sae": sae.config.to_dict(),
        "train": asdict(config),
        "data": {"n_rows": source.n_rows, "d_in": source.d_in, "order": order.describe()},
        "plan": plan,
    }
    torch.manual_seed(config.seed)
    optimizer = torch.optim.Adam(
        sae.parameters(), lr=plan["lr"], betas=config.betas, eps=config.eps
    )
    device = sae.W_enc.device  # batches go where the SAE is (CUDA when it was put there)
    silent = torch.zeros(sae.d_sae, dtype=torch.int64, device=device)  # rows since last fired
    state = TrainState()
    losses: list[float] = []  # every step's loss (kept in the checkpoint for the checks)
    if saved is not None:
        state, losses = _load_checkpoint(ckpt, sae, optimizer, silent, settings)
        log.info("resuming %s at step %d of %d", out, state.step, total)
    else:
        (out / CONFIG).unlink(missing_ok=True)  # the config first: the folder stops reading
        (out / WEIGHTS).unlink(missing_ok=True)  # as a complete SAE (analyses.sae.io)
        if ckpt.exists():
            shutil.rmtree(ckpt)
        (out / LOG_NAME).unlink(missing_ok=True)
        scale, mean = _estimate_scale(source, order, config, plan["normalize"])
        state.input_scale = scale
        if config.b_dec_init == "mean":
            with torch.no_grad():
                sae.b_dec.copy_(torch.from_numpy(mean).float())
    logger = _Log(out / LOG_NAME)
    logger.write(
        event="start",
        step=state.step,
        total_steps=total,
        batch_size=batch_size,
        tokens=state.tokens,
        time_s=state.elapsed_s,
        **settings,
        source={**source.describe(), **order.describe()},
    )
    scale = state.input_scale
    sae.train()
    t0 = time.perf_counter() - state.elapsed_s
    window_t, window_tokens = time.perf_counter(), 0
    steps_this_call = 0
    bar_scope = contextlib.ExitStack()
    bar = bar_scope.enter_context(
        console.progress(total, "train SAE", unit="step", initial=state.step)
    )
    watch = Divergence(config.divergence_factor, losses)
    try:
        while state.step < total:
            if stop_after is not None and steps_this_call >= stop_after:
                break
            with contextlib.closing(
                order.batches(batch_size, config.seed, state.epoch, state.batch_in_epoch)
            ) as batches:
                for batch in batches:
                    if state.step >= total or (
                        stop_after is not None and steps_this_call >= stop_after
                    ):
                        break
                    x = torch.from_numpy(batch).to(device, non_blocking=True)
                    if scale != 1.0:
                        x = x * scale
                    dead = silent >= dead_window
                    lr = config.lr_at(state.step, total)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    loss, parts, z, x_hat = sae.loss(x, dead)
                    loss_value = float(loss.detach())
                    main_loss = _main_loss(sae, loss_value, parts)
                    problem = watch.check(state.step, main_loss)
                    if problem is not None:
                        _diverged(logger, state, problem, config, total)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    sae.before_step()
                    if config.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(sae.parameters(), config.grad_clip)
                    optimizer.step()
                    sae.after_step()
                    with torch.no_grad():
                        fired = (z > 0).any(dim=0)
                        silent += x.shape[0]
                        silent[fired] = 0
                    done_steps = state.step + 1
                    if (
                        config.resample
                        and done_steps % resample_steps == 0
                        and done_steps < config.resample_until * total
                    ):
                        state.resampled += _resample(
                            sae, optimizer, silent, dead_window, x, x_hat, config.seed, state.step
                        )
                    losses.append(main_loss)
                    state.step += 1
                    bar.update()
                    state.batch_in_epoch += 1
                    state.tokens += int(x.shape[0])
                    steps_this_call += 1
                    window_tokens += int(x.shape[0])
                    if state.step % config.log_every == 0 or state.step == total:
                        now = time.perf_counter()
                        with torch.no_grad():
                            var = (x - x.mean(0)).pow(2).sum()
                            ev = 1 - float((x - x_hat).pow(2).sum() / var) if var > 0 else math.nan
                        logger.write(
                            event="step",
                            step=state.step,
                            tokens=state.tokens,
                            time_s=now - t0,
                            lr=lr,
                            loss=loss_value,
                            **{k: float(v) for k, v in parts.items()},
                            batch_l0=float((z > 0).sum(-1).float().mean()),
                            batch_explained_variance=ev,
                            dead_fraction=float((silent >= dead_window).float().mean()),
                            tokens_per_s=window_tokens / max(now - window_t, 1e-9),
                        )
                        window_t, window_tokens = now, 0
                    if config.checkpoint_every and state.step % config.checkpoint_every == 0:
                        state.elapsed_s = time.perf_counter() - t0
                        _save_checkpoint(ckpt, sae, optimizer, silent, state, settings, losses)
                        logger.write(
                            event="checkpoint",
                            step=state.step,
                            tokens=state.tokens,
                            time_s=state.elapsed_s,
                        )
                else:
                    state.epoch += 1
                    state.batch_in_epoch = 0
        state.elapsed_s = time.perf_counter() - t0
        _save_checkpoint(ckpt, sae, optimizer, silent, state, settings, losses)
        done = state.step >= total
        result: dict[str, Any] = {
            "steps": state.step,
            "tokens": state.tokens,
            "done": done,
            "tokens_per_s": state.tokens / max(state.elapsed_s, 1e-9),
            "path": str(out),
            "batch_size": batch_size,
            "total_steps": total,
            "epochs": plan["epochs"],
            "resampled_latents": state.resampled,
        }
        if done:
            result.update(convergence(losses, int(config.decay_fraction * total)))
            if result["loss_still_falling"]:
                console.warn(falling_message(result, total, batch_size))
            sae.eval()
            save_final(
                sae,
                out,
                scale,
                {
                    **(meta or {}),
                    **settings,
                    "source": {**source.describe(), **order.describe()},
                    "trained_steps": state.step,
                    "trained_tokens": state.tokens,
                    "convergence": {k: result[k] for k in CONVERGENCE_KEYS if k in result},
                },
            )
        logger.write(
            event="done" if done else "paused",
            step=state.step,
            tokens=state.tokens,
            time_s=state.elapsed_s,
            tokens_per_s=result["tokens_per_s"],
            **{k: result[k] for k in CONVERGENCE_KEYS if k in result},
        )
    finally:
        bar_scope.close()
        logger.close()
    return result


CONVERGENCE_KEYS = (
    "converged",
    "loss_still_falling",
    "loss_last",
    "loss_before",
    "loss_drop",
    "window_steps",
    "window_end",
)


def _resample(sae, optimizer, silent, dead_window, x, x_hat, seed: int, step: int) -> int:
    """Resample the latents silent for `dead_window` rows (`analyses.sae.resample`) and restart
    their silence count; returns how many were resampled."""
    dead = silent >= dead_window
    n = resample_dead(sae, optimizer, dead, x, x_hat.detach(), seed * 1_000_003 + step)
    if n:
        silent[dead] = 0
    return n


#: loss parts that switch on as latents die, and the config field weighing each
_DEAD_TERMS = {"auxk": "auxk_coef", "pre_act": "pre_act_coeff"}


def _main_loss(sae: SparseAutoencoder, loss: float, parts: dict[str, torch.Tensor]) -> float:
    """The step's loss without its dead-latent terms (AuxK, JumpReLU's pre-activation loss:
    they switch on as latents die), rounded to float32 as the checkpoint keeps it (so a
    resumed run judges the same numbers)."""
    for part, coeff in _DEAD_TERMS.items():
        if part in parts:
            loss -= float(getattr(sae.config, coeff, 0.0)) * float(parts[part])
    return float(np.float32(loss))


def _diverged(logger: _Log, state: TrainState, problem: str, config: TrainConfig, total: int):
    """Record a diverged run in the log and stop it with an InputError naming the step and
    --lr. The last checkpoint (before the divergence) stays; no final SAE is written."""
    logger.write(event="diverged", step=state.step, tokens=state.tokens, reason=problem)
    raise InputError(
        f"SAE training diverged at step {state.step + 1} of {total}: {problem}. Lower the learning "
        f"rate (--lr, now {config.lr_for(total):g}; try {config.lr_for(total) / 10:g}); no SAE was saved. Start "
        "again with --no-resume (the checkpoint holds the old settings)"
    )


def save_final(sae: SparseAutoencoder, out: Path, scale: float, meta: dict[str, Any]) -> Path:
    """Save a copy of `sae` with the input scale folded in (it then takes raw activations)."""
    import copy

    folded = copy.deepcopy(sae)
    if scale != 1.0:
        folded.fold_input_scale(scale)
    return save_sae(folded, out, {**meta, "input_scale_folded": scale})


def _save_checkpoint(ckpt, sae, optimizer, silent, state, settings, losses) -> None:
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _write_tensors(
        tmp / "sae.safetensors",
        {
            **state_tensors(sae),
            "silent": silent,
            "losses": torch.tensor(losses, dtype=torch.float64),
        },
    )
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    _write_json(tmp / "state.json", {"state": asdict(state), "settings": settings})
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    if old.exists():
        shutil.rmtree(old)


def _saved_settings(ckpt: Path) -> dict[str, Any] | None:
    """The settings of the checkpoint at `ckpt` (None: there is none). A run killed between
    the two renames of `_save_checkpoint` left the previous checkpoint as `checkpoint.old`:
    it is whole, so it is put back."""
    old = ckpt.with_name(ckpt.name + ".old")
    if not (ckpt / "state.json").is_file() and (old / "state.json").is_file():
        if ckpt.exists():
            shutil.rmtree(ckpt)
        old.rename(ckpt)
    if not (ckpt / "state.json").is_file():
        return None
    return dict(json.loads((ckpt / "state.json").read_text())["settings"])


def _load_checkpoint(ckpt, sae, optimizer, silent, settings) -> tuple[TrainState, list[float]]:
    saved = json.loads((ckpt / "state.json").read_text())
    if json.loads(json.dumps(settings, default=str)) != saved["settings"]:
        raise InputError(
            f"the checkpoint in {ckpt} was written with other settings; pass resume=False "
            f"(CLI: --no-resume) to start over. Saved: {saved['settings']}"
        )
    tensors = _load_tensors(ckpt / "sae.safetensors")
    with torch.no_grad():
        for name, target in state_tensors(sae).items():
            target.copy_(tensors[name])
        silent.copy_(tensors["silent"].long())
    optimizer.load_state_dict(
        torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
    )
    losses = tensors["losses"].tolist() if "losses" in tensors else []
    return TrainState(**saved["state"]), losses


def train_sae(
    data: Any,
    out: str | Path,
    architecture: str = "topk",
    train_config: TrainConfig | None = None,
    site: str | None = None,
    resume: bool = True,
    meta: dict[str, Any] | None = None,
    device: str | torch.device | None = "auto",
    **settings: Any,
) -> tuple[SparseAutoencoder, dict[str, Any]]:
    """Build an SAE of `architecture` (settings: d_sae, k, l1_coeff, ...; d_in from the data)
    on `device` ("auto": CUDA when present, else CPU; the SAE trains in float32 there, its rows
    read on the CPU and moved per batch) and train it; returns (sae, train result)."""
    from workbench.devices import resolve_device

    source = as_row_source(data, site)
    sae = build_sae(make_config(architecture, d_in=source.d_in, **settings))
    sae.to(resolve_device(device))
    result = train(sae, source, out, train_config, resume=resume, meta=meta)
    return sae, result
