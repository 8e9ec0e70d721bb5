"""Measure steering: behaviour shift, collateral damage, and sweeps over sites x coefficients
with a random-direction control beside every number.

Language models (`lm_behaviour`), for prompts P and a target token set S (and optionally an
opposite set S'):
- `target_mass`: mean over prompts and generated positions of P(next token in S) under the
  steered model, read along the steered greedy continuation (probabilities, in [0, 1]);
- `target_minus_opposite`: the same mass for S minus the mass for S';
- `target_fraction`: fraction of generated tokens that fall in S.
Collateral (`lm_collateral`), on neutral texts with the vector added at every position:
- `loss`: mean next-token cross-entropy (nats/token) over real tokens;
- `kl`: mean KL(unsteered || steered) of the next-token distributions (nats).
Any model (`module_behaviour`): a user metric `fn(outputs) -> float` of the steered outputs.

Sweeps run all coefficients of one site in one batched pass (the batch is repeated once per
coefficient with a per-row coefficient), and the unsteered pass once per sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch

from analyses.steering.apply import generate, steer
from analyses.steering.vectors import SteeringVector
from workbench import console
from workbench.errors import InputError
from workbench.models.handle import ModelHandle


def _repeat(prompts: Sequence[str], coeffs: Sequence[float]) -> tuple[list[str], torch.Tensor]:
    rows = [p for _ in coeffs for p in prompts]
    per_row = torch.tensor([float(c) for c in coeffs for _ in prompts])
    return rows, per_row


def _logits(handle: ModelHandle, batch: Any) -> torch.Tensor:
    out = handle.run(batch)
    return (out.logits if hasattr(out, "logits") else out).float()


def lm_behaviour(
    handle: ModelHandle,
    vector: SteeringVector,
    coeffs: Sequence[float],
    prompts: Sequence[str],
    target_ids: Sequence[int],
    opposite_ids: Sequence[int] = (),
    *,
    where: str = "after",
    mode: str = "add",
    scale: float | None = None,
    max_new_tokens: int = 8,
) -> pd.DataFrame:
    """Behaviour metrics (see module docstring) per coefficient: columns coeff, metric, value.

    All coefficients run as one batch (len(coeffs) x len(prompts) rows)."""
    if not handle.is_language_model:
        raise InputError("lm_behaviour needs a language model; use module_behaviour")
    if not prompts or not target_ids:
        raise InputError("lm_behaviour needs at least one prompt and one target token id")
    rows, per_row = _repeat(prompts, coeffs)
    batch, tokens = generate(
        handle, rows, vector, per_row, where=where, mode=mode, scale=scale,
        max_new_tokens=max_new_tokens,
    )  # fmt: skip
    assert batch.input_ids is not None and batch.attention_mask is not None
    prompt_len = batch.input_ids.shape[1]
    full = {
        "input_ids": tokens,
        "attention_mask": torch.cat(
            [batch.attention_mask, torch.ones_like(tokens[:, prompt_len:])], dim=1
        ),
    }
    with steer(handle, vector, per_row, where=where, mode=mode, scale=scale, batch=batch):
        probs = _logits(handle, handle.prepare(full)).softmax(-1)
    # predictions of the generated tokens: positions prompt_len - 1 .. end - 2
    probs = probs[:, prompt_len - 1 : -1]
    target = torch.as_tensor(list(target_ids), device=probs.device)
    mass = probs[..., target].sum(-1).mean(-1)  # (rows,)
    generated = tokens[:, prompt_len:]
    fraction = torch.isin(generated, target.to(generated.device)).float().mean(-1)
    metrics = {"target_mass": mass.cpu(), "target_fraction": fraction.cpu()}
    if opposite_ids:
        opposite = torch.as_tensor(list(opposite_ids), device=probs.device)
        minus = mass - probs[..., opposite].sum(-1).mean(-1)
        metrics["target_minus_opposite"] = minus.cpu()
    return _per_coeff(metrics, coeffs, len(prompts))


def _per_coeff(metrics: dict[str, torch.Tensor], coeffs: Sequence[float], n: int) -> pd.DataFrame:
    records = []
    for metric, values in metrics.items():
        for i, coeff in enumerate(coeffs):
            block = values[i * n : (i + 1) * n]
            records.append({"coeff": float(coeff), "metric": metric, "value": float(block.mean())})
    return pd.DataFrame(records)


def lm_collateral(
    handle: ModelHandle,
    vector: SteeringVector,
    coeffs: Sequence[float],
    texts: Sequence[str],
    *,
    mode: str = "add",
    scale: float | None = None,
) -> pd.DataFrame:
    """Loss on neutral `texts` and KL from the unsteered next-token distribution per coefficient
    (vector applied at every position)."""
    if not texts:
        raise InputError("lm_collateral needs at least one neutral text")
    base = handle.prepare(list(texts))
    clean = _logits(handle, base).log_softmax(-1)
    rows, per_row = _repeat(texts, coeffs)
    batch = handle.prepare(rows)
    assert batch.input_ids is not None and batch.attention_mask is not None
    with steer(handle, vector, per_row, where="all", mode=mode, scale=scale, batch=batch):
        steered = _logits(handle, batch).log_softmax(-1)
    k = len(coeffs)
    clean_rep = clean.repeat(k, 1, 1)
    mask = batch.attention_mask[:, 1:].float()  # next-token targets that are real tokens
    targets = batch.input_ids[:, 1:]
    nll = -steered[:, :-1].gather(-1, targets[..., None]).squeeze(-1)
    kl = (clean_rep.exp() * (clean_rep - steered)).sum(-1)[:, :-1]
    valid = mask * batch.attention_mask[:, :-1].float()
    per_text = {
        "loss": (nll * valid).sum(-1) / valid.sum(-1).clamp(min=1),
        "kl": (kl * valid).sum(-1) / valid.sum(-1).clamp(min=1),
    }
    return _per_coeff(per_text, coeffs, len(texts))


def module_behaviour(
    handle: ModelHandle,
    vector: SteeringVector,
    coeffs: Sequence[float],
    inputs: torch.Tensor,
    metric: Callable[[torch.Tensor], float],
    *,
    mode: str = "add",
    scale: float | None = None,
    name: str = "metric",
) -> pd.DataFrame:
    """A user metric of the steered outputs per coefficient, for any `torch.nn.Module`."""
    records = []
    for coeff in coeffs:
        with steer(handle, vector, float(coeff), mode=mode, scale=scale):
            out = handle.run(handle.prepare(inputs))
        records.append({"coeff": float(coeff), "metric": name, "value": float(metric(out))})
    return pd.DataFrame(records)


def sweep(
    measure: Callable[[SteeringVector], pd.DataFrame],
    vectors: Sequence[SteeringVector],
    *,
    controls: int = 1,
    seed: int = 0,
) -> pd.DataFrame:
    """Run `measure(vector) -> frame(coeff, metric, value)` for each vector (one per site, say)
    and for `controls` random directions of the same norm at the same site; one tidy frame with
    columns site, direction ("concept" or "random"), control (index), coeff, metric, value."""
    frames = []
    for vector in console.track(vectors, "steering sweep", unit="site"):
        frame = measure(vector).assign(site=vector.site, direction="concept", control=-1)
        frames.append(frame)
        for c in range(controls):
            random = vector.random_control(seed + c)
            frames.append(measure(random).assign(site=vector.site, direction="random", control=c))
    if not frames:
        raise InputError("sweep needs at least one vector")
    columns = ["site", "direction", "control", "coeff", "metric", "value"]
    return pd.concat(frames, ignore_index=True)[columns]
