"""Finetune a model with codebooks in place: loss = task loss (next-token cross-entropy for the
zoo LMs, `workbench.zoo.lm.token_losses`) + `recon_coeff` x reconstruction (the reference's
`'aeloss'`: mean over tokens of sum_d (out - z)^2 with z detached, so it trains the codes only).

Which parameters train is an option (`TrainConfig.trainable`): the codes alone (the default),
the codebooks (codes + LayerNorm), or the codebooks and the model. The default keeps the
LayerNorm at the site's own scale (`CodebookLayer.match_scale`) and frozen: trained, the
straight-through task gradient inflates its gain with nothing in the loss to restrain it (z is
detached in the reconstruction term), and the reconstruction error grows with it (fsm-lm block 1,
300 steps at lr 1e-2: 12 -> 50, and 12 -> 205 with the model training too; benchmarks/RESULTS.md). Task metrics with and without codebooks
are measured the way the zoo measures them (`workbench.zoo.lm.evaluate`; fsm-lm's `valid_accuracy` = fraction of argmax
next-token predictions that are legal transitions from the true hidden state).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analyses.codebook.analysis import code_usage, collect_codes
from analyses.codebook.config import INIT_TOKENS, TrainConfig
from analyses.codebook.model import Codebooks, encode_examples, lm_view, load_base_model
from analyses.sae.convergence import Divergence, convergence
from workbench import console
from workbench.errors import InputError

log = logging.getLogger(__name__)


def reconstruction_loss(books: Codebooks, mask: torch.Tensor) -> torch.Tensor:
    """Sum over layers of the mean over real tokens of sum_d (out - z)^2 (z detached)."""
    total = torch.zeros(())
    for layer in books.layers:
        err = ((layer.last_out - layer.last_z) ** 2).sum(-1)  # type: ignore[operator]
        m = mask[:, : err.shape[1]].to(err)
        total = total + (err * m).sum() / m.sum()
    return total


@torch.no_grad()
def init_codes_from_data(
    handle, books: Codebooks, ids: torch.Tensor, mask: torch.Tensor, kmeans_iters: int = 0
) -> None:
    """Match every layer's LayerNorm to its site's scale (`CodebookLayer.match_scale`, over the
    content tokens) and set its codes to random normalised activations of the model without
    codebooks (real tokens), refined by `kmeans_iters` Lloyd steps (`CodebookLayer.init_from`)."""
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
        # the scale from content tokens: the BOS row's norm is 3-5x theirs on the zoo LMs
        layer.match_scale(seen[site][:, 1:][mask[:, 1:].bool()])
        z = layer.ln(seen[site][mask.bool()])
        if len(z) < layer.codes_per_group:
            console.warn(
                f"{site}: {len(z)} tokens to initialise {layer.codes_per_group} codes per group; "
                "codes are drawn with repeats (more --n-train or fewer --n-codes avoids it)"
            )
        layer.init_from(z, seed=i, kmeans_iters=kmeans_iters)


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
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Train `books` (what `cfg.trainable` names) on (ids, mask) (n, L); returns the loss
    curve (every 50th step and the last) and the convergence check of every step's loss
    (`analyses.sae.convergence.convergence`; None values for steps = 0). The model's and the
    LayerNorms' requires_grad flags are restored afterwards.

    Raises InputError naming the step and `--lr` when the loss turns NaN/Inf or its smoothed
    value grows past `cfg.divergence_factor` x its lowest (`analyses.sae.convergence`); the
    caller then saves nothing."""
    from workbench.zoo.lm import token_losses

    if cfg.init == "data":
        n_init = int((mask.sum(1).cumsum(0) < INIT_TOKENS).sum()) + 1
        init_codes_from_data(
            handle, books, ids[:n_init], mask[:n_init], kmeans_iters=cfg.kmeans_iters
        )
    flags = {n: p.requires_grad for n, p in handle.model.named_parameters()}
    ln_params = [p for layer in books.layers for p in layer.ln.parameters()]  # type: ignore[union-attr]
    ln_flags = [p.requires_grad for p in ln_params]
    train_model = cfg.trainable == "all"
    for p in handle.model.parameters():
        p.requires_grad_(train_model)
    for p in ln_params:
        p.requires_grad_(cfg.trainable != "codes")
    params = [{"params": [p for p in books.parameters() if p.requires_grad], "lr": cfg.lr}]
    if train_model:
        params.append({"params": list(handle.model.parameters()), "lr": cfg.model_lr})
    opt = torch.optim.Adam(params)
    gen = torch.Generator().manual_seed(cfg.seed)
    curve: list[dict[str, float]] = []
    losses: list[float] = []
    watch = Divergence(cfg.divergence_factor)
    books.train()
    started = time.perf_counter()
    try:
        with books.insert(handle):
            for step in console.track(range(cfg.steps), "train codebooks", unit="step"):
                rows = torch.randint(len(ids), (cfg.batch_size,), generator=gen)
                b_ids, b_mask = ids[rows], mask[rows]
                token_loss, _ = token_losses(lm_view(handle), b_ids, b_mask)
                real = b_mask[:, 1 : token_loss.shape[1] + 1]
                task = (token_loss * real).sum() / real.sum()
                recon = reconstruction_loss(books, b_mask)
                loss = task + cfg.recon_coeff * recon
                losses.append(float(loss.detach()))
                problem = watch.check(step, losses[-1])
                if problem is not None:
                    raise InputError(
                        f"codebook training diverged at step {step + 1} of {cfg.steps}: {problem} "
                        f"(task {float(task.detach()):.4g}, reconstruction "
                        f"{float(recon.detach()):.4g}). Lower the learning rate (--lr, now "
                        f"{cfg.lr:g}; try {cfg.lr / 10:g}"
                        + (f"; --model-lr, now {cfg.model_lr:g}" if train_model else "")
                        + "); nothing was saved"
                    )
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
        for p, flag in zip(ln_params, ln_flags, strict=True):
            p.requires_grad_(flag)
        books.eval()
    return curve, convergence(losses)


def falling_message(settled: dict[str, Any], cfg: TrainConfig) -> str:
    """The warning (and report line) for a run that ended with its loss still falling."""
    if settled.get("loss_drop") is None:
        measured = f"{cfg.steps} step(s) are too few to tell whether the loss has settled"
    else:
        measured = (
            f"the mean loss over the {settled['window_steps']} steps up to step "
            f"{settled['window_end']} ({settled['loss_last']:.4g}) is "
            f"{100 * settled['loss_drop']:.1f}% below the {settled['window_steps']} steps before "
            f"({settled['loss_before']:.4g})"
        )
    return (
        f"codebook training ended with the loss still falling: {measured}; it is not converged. "
        f"Train longer (--steps, now {cfg.steps})"
    )


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
    groups: int = 1,
) -> tuple[Any, Codebooks]:
    """Load `base` (a zoo name or model spec; or pass `handle`), put codebooks (`groups` per
    site, `n_codes` codes each) at `sites`, finetune on `dataset` (default: the zoo model's),
    measure the task metric with and without codebooks on held-out examples (seed 1) into
    `books.report` (with "convergence": `finetune`'s check, and a warning on the console when
    the loss was still falling), and save to `out` if given. A diverged run raises and saves
    nothing."""
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
    books = Codebooks.for_handle(handle, sites, n_codes, k, seed=cfg.seed, groups=groups)
    before = task_metrics(handle, e_ids, e_mask, fsm_examples=fsm_ex)
    started = time.perf_counter()
    curve, settled = finetune(handle, books, ids, mask, cfg)
    seconds = time.perf_counter() - started
    if settled["loss_still_falling"]:
        console.warn(falling_message(settled, cfg))
    books.report = {
        "dataset": dataset,
        "n_train": n_train,
        "n_eval": n_eval,
        "train": asdict(cfg),
        "curve": curve,
        "convergence": settled,
        "train_seconds": round(seconds, 1),
        "without_codebooks": before,
        "with_codebooks": task_metrics(handle, e_ids, e_mask, books, fsm_examples=fsm_ex),
        "model_after_finetune": task_metrics(handle, e_ids, e_mask, fsm_examples=fsm_ex),
        "top_codes": top_codes(handle, books, e_ids, e_mask),
    }
    if out is not None:
        books.save(out, handle.model if cfg.trainable == "all" else None)
    return handle, books
