"""Zoo recipe `mod-add`: a one-layer GPT-NeoX that groks modular addition (see
datasets/zoo-mod-add.md).

The setting of Power et al. 2022 ("Grokking") and Nanda et al. 2023 ("Progress measures for
grokking via mechanistic interpretability"), shrunk to fit a laptop CPU: (a + b) mod p with
p = 53, 40% of the pairs used for training, one transformer layer, full-batch AdamW with weight
decay 1. The model first memorises the training pairs (train accuracy 1.0 by step 64, test
accuracy ~0.4, about what commutativity alone gives) and generalises hundreds of steps later
(test accuracy >= 0.95 by step ~800), as weight decay pushes it to the Fourier circuit.

The model is a Hugging Face `GPTNeoXForCausalLM` with the word tokenizer of
`arithmetic.VOCABULARY` (the numbers 0..96 and `=`; only 0..p-1 occur), so every checkpoint
loads with `workbench.load_model(f"{folder}@{step}")` and has TransformerLens sites
(`blocks.0.hook_resid_post`, `blocks.0.attn.hook_pattern`, `blocks.0.mlp.hook_post`, ...).
Inputs are laid out as the loaded model's tokenizer lays out the text `"a b ="`:
`[<|endoftext|>, a, b, =]` (a BOS token is prepended), and the loss is the cross-entropy of the
answer's number word at the `=` position (the last one) only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from workbench import console
from workbench.zoo.catalog import MOD_ADD_P as P
from workbench.zoo.catalog import MOD_ADD_TRAIN_FRACTION as TRAIN_FRACTION
from workbench.zoo.recipe import checkpoint_steps

DATA_SEED = 0
MODEL_SEED = 0
N_LAYERS = 1
D_MODEL = 128
N_HEADS = 4
D_MLP = 512
LR = 2e-3
WEIGHT_DECAY = 1.0
BETAS = (0.9, 0.98)
WARMUP = 10
DECAY_STEPS = 500
STEPS = 1500
LINEAR_EVERY = 100
QUICK_STEPS = 60


def _data(p: int, train_fraction: float, tokenizer) -> dict[str, torch.Tensor]:
    """Token ids (n, 4) = [bos, a, b, =] and answer token ids (n,), for train and test."""
    from workbench.data import arithmetic

    examples = arithmetic.generate(None, DATA_SEED, p=p, train_fraction=train_fraction)
    tokens, answers = arithmetic.as_arrays(examples, p=p)
    # ids in vocabulary(p) -> ids of the tokenizer (the same words, shifted past the specials)
    word_ids = tokenizer.convert_tokens_to_ids(arithmetic.vocabulary(p))
    lookup = np.array(word_ids, dtype=np.int64)
    bos = np.full((len(tokens), 1), tokenizer.bos_token_id, dtype=np.int64)
    ids = np.concatenate([bos, lookup[tokens]], axis=1)
    targets = lookup[answers]
    split = np.array([e.labels["split"] for e in examples])
    return {
        "train_x": torch.from_numpy(ids[split == 0]),
        "train_y": torch.from_numpy(targets[split == 0]),
        "test_x": torch.from_numpy(ids[split == 1]),
        "test_y": torch.from_numpy(targets[split == 1]),
    }


def _answer_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """The logits at the last position of a one-layer GPT-NeoX, computing only what that
    position needs: the same function as `model(input_ids=ids).logits[:, -1]`, several times
    cheaper to train. Queries, keys and values before attention depend only on (position,
    token), so they are computed once per distinct token at each position and gathered; the
    attention output, MLP and unembedding are computed at the last position only. `train`
    checks the equality on the initial weights (and the tests on a trained checkpoint)."""
    from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

    core = model.gpt_neox
    (layer,) = core.layers
    attn = layer.attention
    n, length = ids.shape
    cos, sin = core.rotary_emb(core.embed_in.weight, torch.arange(length)[None])
    keys, values = [], []
    for pos in range(length):
        tokens, inverse = torch.unique(ids[:, pos], return_inverse=True)
        qkv = attn.query_key_value(layer.input_layernorm(core.embed_in(tokens)))
        query, key, value = qkv.view(len(tokens), -1, 3 * attn.head_size).chunk(3, dim=-1)
        query, key = apply_rotary_pos_emb(query, key, cos[:, pos], sin[:, pos])
        keys.append(key[inverse])
        values.append(value[inverse])
    query = query[inverse][:, :, None]  # the last position's: (n, heads, 1, head_size)
    key = torch.stack(keys, dim=2)  # (n, heads, length, head_size)
    value = torch.stack(values, dim=2)
    # the last query attends to every position: no mask needed
    mixed = F.scaled_dot_product_attention(query, key, value, scale=attn.scaling)
    attn_out = attn.dense(mixed.reshape(n, -1))
    last = core.embed_in(ids[:, -1])
    if layer.use_parallel_residual:
        last = last + attn_out + layer.mlp(layer.post_attention_layernorm(last))
    else:
        last = last + attn_out
        last = last + layer.mlp(layer.post_attention_layernorm(last))
    return model.get_output_embeddings()(core.final_layer_norm(last))


def _check_fast_path(model, ids: torch.Tensor) -> None:
    with torch.no_grad():
        fast = _answer_logits(model, ids)
        full = model(input_ids=ids).logits[:, -1, :]
    if not torch.allclose(fast, full, atol=1e-4, rtol=1e-4):
        gap = float((fast - full).abs().max())
        raise RuntimeError(f"mod-add fast forward disagrees with the HF model (max gap {gap})")


@torch.no_grad()
def _evaluate(model, data: dict[str, torch.Tensor]) -> dict[str, float]:
    model.eval()
    row = {}
    for part in ("train", "test"):
        logits = _answer_logits(model, data[f"{part}_x"])
        y = data[f"{part}_y"]
        row[f"{part}_loss"] = float(F.cross_entropy(logits, y))
        row[f"{part}_acc"] = float((logits.argmax(-1) == y).float().mean())
    model.train()
    return row


def train(
    folder: Path,
    quick: bool = False,
    *,
    p: int = P,
    train_fraction: float = TRAIN_FRACTION,
    steps: int | None = None,
    lr: float = LR,
    weight_decay: float = WEIGHT_DECAY,
) -> dict[str, float]:
    """Train the mod-add transformer into `folder` (HF folders `step<N>/` and metrics.json);
    returns the final metrics, with `memorised_step` and `generalised_step` (-1 if never)."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and robust to busy machines
    try:
        return _train(folder, quick, p, train_fraction, steps, lr, weight_decay, started)
    finally:
        torch.set_num_threads(threads)


def _train(folder, quick, p, train_fraction, steps, lr, weight_decay, started):
    from workbench.data import arithmetic
    from workbench.zoo.hf_folder import gpt_neox_model, save_hf_folder, word_tokenizer

    folder = Path(folder)
    total = steps if steps is not None else (QUICK_STEPS if quick else STEPS)
    tokenizer = word_tokenizer(arithmetic.VOCABULARY)
    data = _data(p, train_fraction, tokenizer)
    model = gpt_neox_model(
        len(tokenizer), n_layers=N_LAYERS, d_model=D_MODEL, n_heads=N_HEADS, d_mlp=D_MLP,
        n_ctx=8, seed=MODEL_SEED,
    )  # fmt: skip
    # Nanda et al.'s block: attention, then the MLP reads its output (GPT-NeoX's default
    # parallel residual would feed the MLP only the constant `=` embedding at the answer position)
    model.config.use_parallel_residual = False
    for layer in model.gpt_neox.layers:
        layer.use_parallel_residual = False
    _check_fast_path(model, data["test_x"][:64])
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=BETAS)
    decay = min(DECAY_STEPS, total // 5)

    def lr_factor(step: int) -> float:
        # warm-up, constant, then a linear decay to 10% over the last `decay` steps (it damps
        # the loss spikes full-batch Adam shows once the training loss is tiny)
        warm = min(1.0, (step + 1) / WARMUP)
        return warm * max(0.1, min(1.0, (total - step) / decay)) if decay else warm

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    saves = set(checkpoint_steps(total, LINEAR_EVERY))
    curve: list[dict[str, float]] = []
    x, y = data["train_x"], data["train_y"]
    for step in console.track(range(total + 1), unit="step"):
        if step in saves:
            row = {"step": step, **_evaluate(model, data)}
            curve.append(row)
            save_hf_folder(model, tokenizer, folder / f"step{step}")
        if step == total:
            break
        loss = F.cross_entropy(_answer_logits(model, x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    (folder / "metrics.json").write_text(json.dumps(curve, indent=1))
    final = curve[-1]
    memorised = next((r["step"] for r in curve if r["train_acc"] >= 0.99), -1)
    generalised = next((r["step"] for r in curve if r["test_acc"] >= 0.95), -1)
    return {
        "train_loss": final["train_loss"],
        "train_accuracy": final["train_acc"],
        "test_loss": final["test_loss"],
        "test_accuracy": final["test_acc"],
        "memorised_step": memorised,
        "generalised_step": generalised,
        "steps": total,
        "p": p,
        "train_fraction": train_fraction,
        "train_seconds": round(time.perf_counter() - started, 1),
        "chance_accuracy": 1.0 / p,
    }
