"""Finetune a model with codebooks in place: loss = task loss (next-token cross-entropy for the
zoo LMs, `workbench.zoo.lm.token_losses`) + `recon_coeff` x reconstruction (the reference's
`'aeloss'`: mean over tokens of sum_d (out - z)^2 with z detached, so it trains the codes only).

Which parameters train is an option: the codebooks alone (LayerNorm + codes, the model frozen),
or the codebooks and the model. Task metrics with and without codebooks are measured the way the
zoo measures them (`workbench.zoo.lm.evaluate`; fsm-lm's `valid_accuracy` = fraction of argmax
next-token predictions that are legal transitions from the true hidden state).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analyses.codebook.analysis import code_usage, collect_codes
from analyses.codebook.model import Codebooks, encode_examples, lm_view, load_base_model
from workbench import console
from workbench.errors import InputError

log = logging.getLogger(__name__)

TRAINABLE = ("codebooks", "all")


@dataclass(frozen=True)
class TrainConfig:
    """Finetuning settings. `trainable`: "codebooks" (model frozen) or "all"; `init`: "data"
    (codes = random normalised activations) or "random" (N(0, 1), the reference's default);
    `replace_every`: steps between dead-code replacements (0 = never, the reference's default)."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    model_lr: float = 1e-3
    recon_coeff: float = 1.0
    trainable: str = "codebooks"
    init: str = "data"
    replace_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE:
            raise InputError(f"trainable must be one of {TRAINABLE}, got {self.trainable!r}")
        if self.init not in ("data", "random"):
            raise InputError(f"init must be 'data' or 'random', got {self.init!r}")
        if self.steps < 0 or self.batch_size < 1:
            raise InputError(
                f"need steps >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}"
            )


def reconstruction_loss(books: Codebooks, mask: torch.Tensor) -> torch.Tensor:
    """Sum over layers of the mean over real tokens of sum_d (out - z)^2 (z detached)."""
    total = torch.zeros(())
    for layer in books.layers:
        err = ((layer.last_out - layer.last_z) ** 2).sum(-1)  # type: ignore[operator]
        m = mask[:, : err.shape[1]].to(err)
        total = total + (err * m).sum() / m.sum()
    return total


@torch.no_grad()
def init_codes_from_data(handle, books: Codebooks, ids: torch.Tensor, mask: torch.Tensor) -> None:
    """Set every layer's codes to random normalised activations of the model without codebooks
    (real tokens only)."""
    from workbench.hooks.intervene import Apply, intervene

    seen: dict[str, torch.Tensor] = {}

    def keep(site: str):
        def fn(x: torch.Tensor) -> torch.Tensor:
            seen[site] = x.detach()
            return x

        return fn

    with intervene(handle, [Apply(s, keep(s)) for s in books.sites]):
        lm_view(handle)(input_ids=ids, attention_mask=mask)
    for i, site in enumerate(books.sites):
        layer = books.layer(site)
        z = layer.ln(seen[site][mask.bool()])
        if len(z) >= layer.n_codes:
            layer.init_from(z, seed=i)


def task_metrics(handle, ids, mask, books: Codebooks | None = None, fsm_examples=None) -> dict:
    """{"loss", "accuracy"[, "valid_accuracy"]} of the model (with `books` spliced in if given);
    `valid_accuracy` when the examples are fsm walks (zoo fsm-lm metric)."""
    from workbench.zoo.lm import evaluate, fsm_metrics

    if books is not None:
        books.eval()
        with books.insert(handle):
            result = evaluate(lm_view(handle), ids, mask)
    else:
        result = evaluate(lm_view(handle), ids, mask)
    out = {"loss": result["loss"], "accuracy": result["accuracy"]}
    if fsm_examples is not None:
        out["valid_accuracy"] = fsm_metrics(fsm_examples)(result)["valid_accuracy"]
    return out


def finetune(
    handle, books: Codebooks, ids: torch.Tensor, mask: torch.Tensor, cfg: TrainConfig
) -> list[dict[str, float]]:
    """Train `books` (and the model, if `cfg.trainable == "all"`) on (ids, mask) (n, L);
    returns the loss curve. The model's requires_grad flags are restored afterwards."""
    from workbench.zoo.lm import token_losses

    if cfg.init == "data":
        init_codes_from_data(handle, books, ids[:256], mask[:256])
    params = [{"params": list(books.parameters()), "lr": cfg.lr}]
    flags = {n: p.requires_grad for n, p in handle.model.named_parameters()}
    train_model = cfg.trainable == "all"
    for p in handle.model.parameters():
        p.requires_grad_(train_model)
    if train_model:
        params.append({"params": list(handle.model.parameters()), "lr": cfg.model_lr})
    opt = torch.optim.Adam(params)
    gen = torch.Generator().manual_seed(cfg.seed)
    curve: list[dict[str, float]] = []
    books.train()
    started = time.perf_counter()
    try:
        with books.insert(handle):
            for step in console.track(range(cfg.steps), "train codebooks", unit="step"):
                rows = torch.randint(len(ids), (cfg.batch_size,), generator=gen)
                b_ids, b_mask = ids[rows], mask[rows]
                losses, _ = token_losses(lm_view(handle), b_ids, b_mask)
                real = b_mask[:, 1 : losses.shape[1] + 1]
                task = (losses * real).sum() / real.sum()
                recon = reconstruction_loss(books, b_mask)
                loss = task + cfg.recon_coeff * recon
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if (
                    cfg.replace_every
                    and (step + 1) % cfg.replace_every == 0
                    and step + 1 < cfg.steps
                ):
                    for i, layer in enumerate(books.by_site().values()):
                        assert layer.last_z is not None
                        z = layer.last_z[b_mask[:, : layer.last_z.shape[1]].bool()]
                        layer.replace_dead_codes(z, seed=cfg.seed + step + i)
                if step % 50 == 0 or step == cfg.steps - 1:
                    curve.append(
                        {
                            "step": step,
                            "task_loss": float(task.detach()),
                            "recon": float(recon.detach()),
                        }
                    )
                    log.info("step %d task %.4f recon %.4f (%.0fs)", step, float(task.detach()),
                             float(recon.detach()), time.perf_counter() - started)  # fmt: skip
    finally:
        for n, p in handle.model.named_parameters():
            p.requires_grad_(flags[n])
        books.eval()
    return curve


def top_codes(handle, books, ids, mask, n: int = 8) -> dict[str, list[list[float]]]:
    """site -> its `n` most used codes on (ids, mask) as [code, usage] (usage: fraction of real
    tokens on which the code fires), most used first; saved in the report so that pages can
    link to a code without running the model."""
    out = {}
    for site, codes in collect_codes(handle, books, ids, mask).items():
        usage = code_usage(codes, books.n_codes)
        order = np.argsort(-usage, kind="stable")[:n]
        out[site] = [[int(c), round(float(usage[c]), 6)] for c in order if usage[c] > 0]
    return out


def train_codebook_model(
    base: str = "fsm-lm",
    sites: str = "blocks.*.hook_resid_post",
    n_codes: int = 256,
    k: int = 1,
    cfg: TrainConfig | None = None,
    dataset: str | None = None,
    n_train: int = 2000,
    n_eval: int = 200,
    zoo_root: str | Path | None = None,
    out: str | Path | None = None,
    handle=None,
) -> tuple[Any, Codebooks]:
    """Load `base` (a zoo name or model spec; or pass `handle`), put codebooks at `sites`,
    finetune on `dataset` (default: the zoo model's), measure the task metric with and without
    codebooks on held-out examples (seed 1) into `books.report`, and save to `out` if given."""
    from workbench.data import load_dataset
    from workbench.zoo import recipes

    cfg = cfg or TrainConfig()
    handle = handle if handle is not None else load_base_model(base, zoo_root)
    if dataset is None:
        name = base.partition("@")[0]
        if name not in recipes():
            raise InputError(f"base {base!r} is not a zoo model: name a dataset for finetuning")
        dataset = recipes()[name].dataset
    train_ex = load_dataset(dataset, n_train, seed=0)
    eval_ex = load_dataset(dataset, n_eval, seed=1)
    ids, mask = encode_examples(handle, train_ex)
    e_ids, e_mask = encode_examples(handle, eval_ex)
    fsm_ex = eval_ex if dataset == "fsm" else None
    books = Codebooks.for_handle(handle, sites, n_codes, k, seed=cfg.seed)
    before = task_metrics(handle, e_ids, e_mask, fsm_examples=fsm_ex)
    started = time.perf_counter()
    curve = finetune(handle, books, ids, mask, cfg)
    seconds = time.perf_counter() - started
    books.report = {
        "dataset": dataset,
        "n_train": n_train,
        "n_eval": n_eval,
        "train": asdict(cfg),
        "curve": curve,
        "train_seconds": round(seconds, 1),
        "without_codebooks": before,
        "with_codebooks": task_metrics(handle, e_ids, e_mask, books, fsm_examples=fsm_ex),
        "model_after_finetune": task_metrics(handle, e_ids, e_mask, fsm_examples=fsm_ex),
        "top_codes": top_codes(handle, books, e_ids, e_mask),
    }
    if out is not None:
        books.save(out, handle.model if cfg.trainable == "all" else None)
    return handle, books
