"""Zoo recipes `toy-lm` and `fsm-lm`: small GPT-NeoX causal LMs (Pythia's architecture) trained
from scratch on a word-level corpus, with a Pythia-like checkpoint series (see
datasets/zoo-toy-lm.md and datasets/zoo-fsm-lm.md).

Inputs are laid out as the loaded model's tokenizer lays out a text: `[<|endoftext|>] + word ids`
(`workbench.load_model` prepends the BOS token, id 0). Batches are right-padded with the pad id 1
(attention_mask 0, label -100); the loss is the mean cross-entropy of every real next token.
Every checkpoint is a Hugging Face folder `step<N>/` (safetensors + tokenizer), loadable with
`workbench.load_model(f"{folder}@{step}")`; `metrics.json` holds the loss curve.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench import console
from workbench.zoo.recipe import checkpoint_steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LMConfig:
    n_layers: int
    d_model: int
    n_heads: int
    n_ctx: int
    steps: int
    batch_size: int
    lr: float
    n_train: int
    n_test: int
    every: int = 250
    warmup: int = 50
    weight_decay: float = 0.01
    min_lr_ratio: float = 0.1
    n_train_eval: int = 256
    data_seed: int = 0
    test_seed: int = 1
    model_seed: int = 0


def lr_at(step: int, cfg: LMConfig) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to `min_lr_ratio * lr`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (
        cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
    )


def encode(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask): `[bos] + word ids` per text, right-padded with the pad id."""
    seqs = [[tokenizer.bos_token_id, *tokenizer.convert_tokens_to_ids(t.split())] for t in texts]
    if any(tokenizer.unk_token_id in s for s in seqs):
        raise ValueError("a text holds a word outside the tokenizer's vocabulary")
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def token_losses(model, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(losses, logits) of predicting ids[:, 1:]: losses (n, L-1) with 0 at pads, logits
    (n, L-1, vocab)."""
    width = int(mask.sum(1).max())
    ids, mask = ids[:, :width], mask[:, :width]
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    losses = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    return losses, logits


@torch.no_grad()
def evaluate(model, ids: torch.Tensor, mask: torch.Tensor, batch: int = 256) -> dict[str, Any]:
    """Mean next-token loss (nats/token) and top-1 accuracy over real tokens, plus per-token
    losses and predictions (n, L-1) for recipe-specific metrics."""
    was_training = model.training
    model.eval()
    losses, preds = [], []
    for i in range(0, len(ids), batch):
        loss, logits = token_losses(model, ids[i : i + batch], mask[i : i + batch])
        pad = ids.shape[1] - 1 - loss.shape[1]
        losses.append(F.pad(loss, (0, pad)))
        preds.append(F.pad(logits.argmax(-1), (0, pad), value=-1))
    model.train(was_training)
    loss, pred = torch.cat(losses), torch.cat(preds)
    real = mask[:, 1:].bool()
    target = ids[:, 1:]
    return {
        "loss": float(loss[real].mean()),
        "accuracy": float((pred == target)[real].float().mean()),
        "token_losses": loss,
        "pred": pred,
        "real": real,
    }


def unigram_entropy(ids: torch.Tensor, mask: torch.Tensor) -> float:
    """Entropy (nats) of the empirical distribution of the predicted tokens (BOS excluded)."""
    counts = torch.bincount(ids[:, 1:][mask[:, 1:].bool()]).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def train_lm(
    folder: Path,
    words: list[str],
    train_texts: list[str],
    test_texts: list[str],
    cfg: LMConfig,
    extra_metrics: Callable[[dict[str, Any]], dict[str, float]] | None = None,
) -> dict[str, float]:
    """Train a GPT-NeoX LM on `train_texts`, write `step<N>/` checkpoints and `metrics.json` into
    `folder`, and return the final metrics. `extra_metrics(test_eval)` adds recipe metrics."""
    from workbench.zoo.hf_folder import gpt_neox_model, save_hf_folder, word_tokenizer

    started = time.perf_counter()
    tokenizer = word_tokenizer(words)
    train_ids, train_mask = encode(tokenizer, train_texts)
    test_ids, test_mask = encode(tokenizer, test_texts)
    if max(train_ids.shape[1], test_ids.shape[1]) > cfg.n_ctx:
        raise ValueError(f"sequences longer than n_ctx={cfg.n_ctx}")
    model = gpt_neox_model(
        len(tokenizer), n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads,
        n_ctx=cfg.n_ctx, seed=cfg.model_seed,
    )  # fmt: skip
    model.train()
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(cfg.data_seed)
    saves = set(checkpoint_steps(cfg.steps, cfg.every))
    train_eval = slice(0, cfg.n_train_eval)
    curve: list[dict[str, float]] = []
    for step in console.track(range(cfg.steps + 1), unit="step"):
        if step in saves:
            save_hf_folder(model, tokenizer, folder / f"step{step}")
            tr = evaluate(model, train_ids[train_eval], train_mask[train_eval])
            te = evaluate(model, test_ids, test_mask)
            curve.append({"step": step, "train_loss": tr["loss"], "test_loss": te["loss"]})
            log.info("step %d: train %.4f test %.4f (%.0fs)", step, tr["loss"], te["loss"],
                     time.perf_counter() - started)  # fmt: skip
        if step == cfg.steps:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        rows = torch.randint(len(train_ids), (cfg.batch_size,), generator=gen)
        losses, _ = token_losses(model, train_ids[rows], train_mask[rows])
        real = train_mask[rows][:, 1 : losses.shape[1] + 1]
        loss = (losses * real).sum() / real.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    final = evaluate(model, train_ids, train_mask)
    test = evaluate(model, test_ids, test_mask)
    h1 = unigram_entropy(test_ids, test_mask)
    metrics = {
        "train_loss": final["loss"],
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "unigram_entropy": h1,
        "test_loss_ratio_to_unigram": test["loss"] / h1,
        "steps": cfg.steps,
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    if extra_metrics is not None:
        metrics.update(extra_metrics(test))
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    record = {"config": asdict(cfg), "curve": curve, "final": metrics}
    (folder / "metrics.json").write_text(json.dumps(record, indent=2))
    return metrics


# ----------------------------------------------------------------------------- toy-lm
TOY_CONFIG = LMConfig(
    n_layers=4, d_model=128, n_heads=4, n_ctx=64, steps=1000, batch_size=32, lr=2e-3,
    n_train=20000, n_test=500,
)  # fmt: skip


def _quick(cfg: LMConfig) -> LMConfig:
    return replace(cfg, steps=30, warmup=5, every=1000, n_train=512, n_test=128, n_train_eval=128)


def train_toy_lm(folder: Path, quick: bool = False) -> dict[str, float]:
    from workbench.data import grammar

    cfg = _quick(TOY_CONFIG) if quick else TOY_CONFIG
    train = [e.text for e in grammar.generate(cfg.n_train, cfg.data_seed)]
    test = [e.text for e in grammar.generate(cfg.n_test, cfg.test_seed)]
    return train_lm(folder, grammar.VOCABULARY, train, test, cfg)


# ----------------------------------------------------------------------------- fsm-lm
FSM_CONFIG = LMConfig(
    n_layers=2, d_model=64, n_heads=4, n_ctx=128, steps=1500, batch_size=32, lr=1e-2,
    n_train=4000, n_test=500,
)  # fmt: skip


def fsm_metrics(test_examples) -> Callable[[dict[str, Any]], dict[str, float]]:
    """Metrics against the machine's true next-token distribution (from the hidden states)."""
    from workbench.data import fsm

    machine = fsm.build_machine()
    prev = np.array([e.word_labels["prev_state"] for e in test_examples])  # (n, 64)
    prob = machine.prob[prev]  # (n, 64, max degree)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(prob > 0, prob * np.log(prob), 0.0).sum(-1)
    optimal = float(entropy.mean())

    def extra(test: dict[str, Any]) -> dict[str, float]:
        # model ids of fsm tokens: word_tokenizer puts the vocabulary after the 3 specials
        pred = test["pred"].cpu().numpy()[:, : prev.shape[1]] - 3
        valid = (machine.token[prev] == pred[..., None]).any(-1)
        return {
            "optimal_loss": optimal,
            "excess_loss": test["loss"] - optimal,
            "valid_accuracy": float(valid.mean()),
        }

    return extra


def train_fsm_lm(folder: Path, quick: bool = False) -> dict[str, float]:
    from workbench.data import fsm

    cfg = _quick(FSM_CONFIG) if quick else FSM_CONFIG
    train = fsm.generate(cfg.n_train, cfg.data_seed)
    test = fsm.generate(cfg.n_test, cfg.test_seed)
    return train_lm(
        folder, fsm.VOCABULARY, [e.text for e in train], [e.text for e in test], cfg,
        extra_metrics=fsm_metrics(test),
    )  # fmt: skip
