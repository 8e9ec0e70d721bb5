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

Input normalisation ("expected_norm"): rows are scaled by s = sqrt(d_in) / E||x|| (estimated on
up to `norm_sample_rows` shuffled rows), SAELens's "expected_average_only_in" (Anthropic, April
2024 update); `SparseAutoencoder.fold_input_scale` folds s into the saved weights.
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
from analyses.sae.data import RowSource, as_row_source
from analyses.sae.io import _load_tensors, _write_json, _write_tensors, save_sae, state_tensors
from analyses.sae.registry import build_sae, make_config
from analyses.sae.stream import BufferedOrder, PermutationOrder, choose_order, parse_memory
from workbench import console
from workbench.errors import InputError

log = logging.getLogger(__name__)

LOG_NAME = "train_log.jsonl"
CHECKPOINT = "checkpoint"
NORMALIZATIONS = ("none", "expected_norm")
B_DEC_INITS = ("mean", "zeros")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        batch_size: rows per step.
        epochs: passes over the data (fractional allowed) when `n_steps` is None.
        n_steps: total optimiser steps (overrides `epochs`).
        lr: peak Adam learning rate; betas, eps: Adam's (eps 6.25e-10 as Gao et al. 2024).
        warmup_steps: linear warm-up from lr / warmup_steps to lr.
        decay_fraction: linear decay to 0 over the last fraction of the steps (0: constant).
        grad_clip: max global gradient norm (0: off).
        dead_window_tokens: a latent that has not fired for this many rows is dead (AuxK).
        normalize: "none" or "expected_norm" (module docstring).
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

    batch_size: int = 4096
    epochs: float = 1.0
    n_steps: int | None = None
    lr: float = 4e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 6.25e-10
    warmup_steps: int = 50
    decay_fraction: float = 0.2
    grad_clip: float = 1.0
    dead_window_tokens: int = 1_000_000
    normalize: str = "none"
    norm_sample_rows: int = 16384
    b_dec_init: str = "mean"
    checkpoint_every: int = 0
    log_every: int = 10
    seed: int = 0
    memory_cap: str | int | None = None

    def __post_init__(self) -> None:
        if self.memory_cap is not None:  # bytes, so "512MiB" and "512 MiB" are one setting
            object.__setattr__(self, "memory_cap", parse_memory(self.memory_cap))
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.n_steps is not None and self.n_steps < 1:
            raise InputError(f"n_steps must be >= 1, got {self.n_steps}")
        if self.n_steps is None and not self.epochs > 0:
            raise InputError(f"epochs must be > 0, got {self.epochs}")
        if not self.lr > 0:
            raise InputError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.decay_fraction <= 1:
            raise InputError(f"decay_fraction must be in [0, 1], got {self.decay_fraction}")
        if self.normalize not in NORMALIZATIONS:
            raise InputError(
                f"normalize {self.normalize!r} is not one of {', '.join(NORMALIZATIONS)}"
            )
        if self.b_dec_init not in B_DEC_INITS:
            raise InputError(
                f"b_dec_init {self.b_dec_init!r} is not one of {', '.join(B_DEC_INITS)}"
            )

    def total_steps(self, n_rows: int) -> int:
        if self.n_steps is not None:
            return self.n_steps
        return max(1, math.ceil(self.epochs * n_rows / self.batch_size))

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of optimiser step `step` (0-based) of `total`."""
        lr = self.lr
        if self.warmup_steps > 0 and step < self.warmup_steps:
            lr *= (step + 1) / self.warmup_steps
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
    source: RowSource, order: PermutationOrder | BufferedOrder, config: TrainConfig
) -> tuple[float, np.ndarray]:
    """(input scale s, mean row of the sample) from up to `norm_sample_rows` shuffled rows."""
    rng = np.random.default_rng(config.seed + 1_000_003)
    n = min(source.n_rows, config.norm_sample_rows)
    rows = np.sort(rng.choice(source.n_rows, size=n, replace=False))
    sample = order.read_rows(rows).astype(np.float64)
    scale = 1.0
    if config.normalize == "expected_norm":
        mean_norm = float(np.linalg.norm(sample, axis=1).mean())
        if mean_norm == 0:
            raise InputError("every sampled row is zero: cannot normalise the inputs")
        scale = math.sqrt(source.d_in) / mean_norm
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

    Returns {"steps", "tokens", "done", "tokens_per_s", "path"}; `sae` holds the trained,
    unfolded weights (the saved copy has the input scale folded in).
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
    total = config.total_steps(source.n_rows)
    ckpt = out / CHECKPOINT
    saved = _saved_settings(ckpt) if resume else None
    order = choose_order(
        source,
        None if config.memory_cap is None else parse_memory(config.memory_cap),
        config.batch_size,
        sae.d_sae,
        sum(p.numel() for p in sae.parameters()),
        saved=(saved or {}).get("data", {}).get("order"),
    )
    settings = {
        "sae": sae.config.to_dict(),
        "train": asdict(config),
        "data": {"n_rows": source.n_rows, "d_in": source.d_in, "order": order.describe()},
    }
    torch.manual_seed(config.seed)
    optimizer = torch.optim.Adam(sae.parameters(), lr=config.lr, betas=config.betas, eps=config.eps)
    device = sae.W_enc.device  # batches go where the SAE is (CUDA when it was put there)
    silent = torch.zeros(sae.d_sae, dtype=torch.int64, device=device)  # rows since last fired
    state = TrainState()
    if saved is not None:
        state = _load_checkpoint(ckpt, sae, optimizer, silent, settings)
        log.info("resuming %s at step %d of %d", out, state.step, total)
    else:
        if ckpt.exists():
            shutil.rmtree(ckpt)
        (out / LOG_NAME).unlink(missing_ok=True)
        scale, mean = _estimate_scale(source, order, config)
        state.input_scale = scale
        if config.b_dec_init == "mean":
            with torch.no_grad():
                sae.b_dec.copy_(torch.from_numpy(mean).float())
    logger = _Log(out / LOG_NAME)
    logger.write(
        event="start",
        step=state.step,
        total_steps=total,
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
    try:
        while state.step < total:
            if stop_after is not None and steps_this_call >= stop_after:
                break
            with contextlib.closing(
                order.batches(config.batch_size, config.seed, state.epoch, state.batch_in_epoch)
            ) as batches:
                for batch in batches:
                    if state.step >= total or (
                        stop_after is not None and steps_this_call >= stop_after
                    ):
                        break
                    x = torch.from_numpy(batch).to(device, non_blocking=True)
                    if scale != 1.0:
                        x = x * scale
                    dead = silent >= config.dead_window_tokens
                    lr = config.lr_at(state.step, total)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    loss, parts, z, x_hat = sae.loss(x, dead)
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
                            loss=float(loss.detach()),
                            **{k: float(v) for k, v in parts.items()},
                            batch_l0=float((z > 0).sum(-1).float().mean()),
                            batch_explained_variance=ev,
                            dead_fraction=float(
                                (silent >= config.dead_window_tokens).float().mean()
                            ),
                            tokens_per_s=window_tokens / max(now - window_t, 1e-9),
                        )
                        window_t, window_tokens = now, 0
                    if config.checkpoint_every and state.step % config.checkpoint_every == 0:
                        state.elapsed_s = time.perf_counter() - t0
                        _save_checkpoint(ckpt, sae, optimizer, silent, state, settings)
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
        _save_checkpoint(ckpt, sae, optimizer, silent, state, settings)
        done = state.step >= total
        result = {
            "steps": state.step,
            "tokens": state.tokens,
            "done": done,
            "tokens_per_s": state.tokens / max(state.elapsed_s, 1e-9),
            "path": str(out),
        }
        if done:
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
                },
            )
        logger.write(
            event="done" if done else "paused",
            step=state.step,
            tokens=state.tokens,
            time_s=state.elapsed_s,
            tokens_per_s=result["tokens_per_s"],
        )
    finally:
        bar_scope.close()
        logger.close()
    return result


def save_final(sae: SparseAutoencoder, out: Path, scale: float, meta: dict[str, Any]) -> Path:
    """Save a copy of `sae` with the input scale folded in (it then takes raw activations)."""
    import copy

    folded = copy.deepcopy(sae)
    if scale != 1.0:
        folded.fold_input_scale(scale)
    return save_sae(folded, out, {**meta, "input_scale_folded": scale})


def _save_checkpoint(ckpt, sae, optimizer, silent, state, settings) -> None:
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _write_tensors(tmp / "sae.safetensors", {**state_tensors(sae), "silent": silent})
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


def _load_checkpoint(ckpt, sae, optimizer, silent, settings) -> TrainState:
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
    return TrainState(**saved["state"])


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
