"""One prompt through a model, read unit by unit: the pieces that every prompt-centric view
shares (sae_vis's prompt-centric view, Neuronpedia's search by text), whatever the units are
(SAE latents, codebook codes).

- `prompt_tokens(handle, text)`: the prompt's token ids and texts, cut to the model's context
  (`context_length`) with a note saying so; an empty prompt is an error.
- `dataset_example(dataset, i)`: a dataset example to use as the prompt (with its labels).
- `unembedding(handle)`: W_U (d_model, vocab) of a causal LM, or None and the reason.
- `logit_effects(vectors, w_u, decode)`: the tokens each unit's output direction pushes up and
  down, `v @ W_U` (the direct effect on the logits, ignoring the final layer norm, as SAE
  dashboards do: Bricken et al. 2023, "Towards Monosemanticity", feature "logit weights").
- `PromptUnits`: a (tokens, units) activation matrix with the prompt's top units (ranked by
  their activation summed over the tokens, each over the unit's own largest activation when
  known; the BOS not ranked), each token's strongest units, a tidy table; `token_detail`: one
  token's units with their logit effects; `text_report` / `print_view`: what the CLI verbs
  print (`prompt_text`, `default_token`: their prompt and token).

The families fill in what is theirs (`analyses.sae.prompt`, `analyses.codebook.prompt`): how a
unit's activation is computed, its best-matching label, its page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.errors import InputError


@dataclass
class PromptTokens:
    """A tokenized prompt. ids: (1, T) int64 on the model's device; tokens: T texts;
    `truncated_from`: the token count before the cut to `context` (None when it fit);
    `special`: positions of the tokenizer's special tokens (BOS, EOS, pad)."""

    text: str
    ids: torch.Tensor
    tokens: list[str]
    context: int | None = None
    truncated_from: int | None = None
    special: list[int] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        """The sentence that says the prompt was cut (None when it was not)."""
        if self.truncated_from is None:
            return None
        return (
            f"the prompt has {self.truncated_from} tokens, more than the model's context of "
            f"{self.context}: truncated to its first {self.context} tokens"
        )


def context_length(handle: Any) -> int | None:
    """The longest sequence the model takes: its config's `n_ctx` (TransformerLens) or
    `max_position_embeddings` (Hugging Face); None when neither is known."""
    for owner in (getattr(handle.model, "cfg", None), getattr(handle.model, "config", None)):
        for name in ("n_ctx", "max_position_embeddings"):
            value = getattr(owner, name, None)
            if isinstance(value, int) and value > 0:
                return value
    return None


def token_texts(handle: Any, ids: Sequence[int]) -> list[str]:
    """Each token id decoded on its own (`tokenizer.decode([id])`)."""
    return [handle.tokenizer.decode([int(i)]) for i in ids]


def prompt_tokens(handle: Any, text: str) -> PromptTokens:
    """`text` tokenized by the model's tokenizer (its own special tokens, e.g. a BOS, included),
    cut to `context_length(handle)` tokens (said in `PromptTokens.note`)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("the prompt is empty: give a text (or pick a dataset example)")
    if not handle.is_language_model or handle.tokenizer is None:
        raise InputError(
            f"a prompt needs a language model with a tokenizer; {handle.info.name!r} is not one"
        )
    ids = handle.prepare([text]).input_ids
    n = int(ids.shape[1])
    context = context_length(handle)
    cut = None
    if context is not None and n > context:
        ids, cut = ids[:, :context], n
    if ids.shape[1] == 0:
        raise InputError(f"the prompt {text!r} gives no tokens")
    special = set(getattr(handle.tokenizer, "all_special_ids", []) or [])
    positions = [i for i, t in enumerate(ids[0].tolist()) if t in special]
    return PromptTokens(text, ids, token_texts(handle, ids[0].tolist()), context, cut, positions)


def dataset_example(dataset: str, index: int, n_examples: int = 200, seed: int = 0) -> Any:
    """Example `index` of the first `n_examples` of `dataset` (`load_dataset(dataset,
    n_examples, seed)`): its `text` is a prompt, its `labels` the ground truth (grammar-lm:
    topic, sentiment)."""
    from workbench.data import load_dataset

    if not 0 <= index < n_examples:
        raise InputError(f"example {index} out of range [0, {n_examples}) of {dataset!r}")
    return load_dataset(dataset, n_examples, seed)[index]


def prompt_text(
    text: str | None, dataset: str | None = None, example: int | None = None
) -> tuple[str, dict[str, int]]:
    """(prompt, its example labels) from a typed `text` or example `example` of `dataset`
    (exactly one of the two; a typed text has no labels)."""
    if example is not None and text is not None:
        raise InputError("give either a text or a dataset example, not both")
    if example is None:
        if text is None:
            raise InputError("no prompt: give a text (--text) or a dataset example (--example N)")
        return text, {}
    if not dataset:
        raise InputError("a dataset example needs a dataset: pass --dataset")
    chosen = dataset_example(dataset, example)
    return chosen.text, dict(chosen.labels)


def default_token(view: PromptUnits) -> int:
    """The token to detail first: the ranked token (not a BOS) where the prompt's top unit
    peaks; the last token when no unit fires."""
    top = view.top_units(1)
    if not top:
        return len(view.tokens.tokens) - 1
    column = view.acts[:, top[0]].copy()
    column[view.skip or []] = -np.inf
    return int(np.argmax(column))


def print_view(view: PromptUnits, detail: dict[str, Any], as_json: bool, n_top: int = 10) -> None:
    """What `workbench sae prompt` and `workbench codebook prompt` print on stdout: one JSON
    object (`PromptUnits.to_dict` + "token": the detail) or `text_report`."""
    import json

    if as_json:
        print(json.dumps({**view.to_dict(n_top), "token": detail}))
    else:
        print(text_report(view, n_top, detail))


def unembedding(handle: Any) -> tuple[torch.Tensor | None, str | None]:
    """(W_U (d_model, vocab) detached, None) for a causal LM that has one, else (None, why)."""
    cfg = getattr(handle.model, "cfg", None)
    architecture = str(getattr(cfg, "architecture", ""))
    w_u = getattr(handle.model, "W_U", None)
    if not architecture.endswith("CausalLM") or not isinstance(w_u, torch.Tensor):
        return None, (
            f"model {handle.info.name!r} has no unembedding W_U (not a causal LM loaded through "
            "TransformerLens): no logit effects"
        )
    return w_u.detach(), None


@torch.no_grad()
def logit_effects(
    vectors: torch.Tensor, w_u: torch.Tensor, decode: Callable[[int], str], k: int = 8
) -> list[dict[str, list[tuple[str, float]]]]:
    """Per row of `vectors` (m, d_model): {"up": [(token, logit)] the k largest entries of
    v @ W_U, "down": the k smallest, most negative first}. w_u: (d_model, vocab)."""
    if vectors.shape[-1] != w_u.shape[0]:
        raise InputError(
            f"the unit directions have width {vectors.shape[-1]}, the unembedding d_model "
            f"{w_u.shape[0]}: no logit effects at this site"
        )
    logits = vectors.float().to(w_u.device) @ w_u.float()  # (m, vocab)
    k = min(k, logits.shape[-1])
    up, down = logits.topk(k, dim=-1), (-logits).topk(k, dim=-1)
    return [
        {
            "up": [(decode(int(i)), float(v)) for v, i in zip(uv, ui, strict=True)],
            "down": [(decode(int(i)), -float(v)) for v, i in zip(dv, di, strict=True)],
        }
        for uv, ui, dv, di in zip(up.values, up.indices, down.values, down.indices, strict=True)
    ]


@dataclass
class PromptUnits:
    """A prompt read through a set of units (SAE latents, codebook codes).

    acts: (T, n_units) activation of every unit on every token (0 where it does not fire);
    `unit` names what a unit is ("latent", "code"); `labels`: unit -> its best-matching label
    ({"label", "precision", "recall", ...}) where the family knows one; `links`: unit -> the URL
    parameters of its page; `notes`: sentences the output must show (truncation, no W_U...);
    `pinned`: units shown in the table whether or not they rank.

    Ranking (`top_units`): by a unit's total activation over the prompt's tokens, each divided
    by `scale[unit]` when given (its largest activation on a reference set), i.e. how many
    tokens' worth of its full activation the prompt holds; ties by the largest activation. A
    latent at its own maximum thus outranks a large-norm latent at a fraction of its own (the
    idea of sae_vis's activation-quantile ranking), and one that fires on every topic word of a
    sentence outranks one that fires on a single word. Special tokens (`skip`, e.g. a BOS whose
    huge activations every "attention sink" latent shares) are shown but not ranked, as
    Neuronpedia's search by text ignores the BOS. Measured on grammar-lm sentences with toy-lm
    SAEs (benchmarks/RESULTS.md): a latent labelled with the sentence's topic is among the top
    five for 66 of 80 sentences (largest activation alone: 55, over the scale: 40).
    """

    tokens: PromptTokens
    acts: np.ndarray
    unit: str
    meta: dict[str, Any] = field(default_factory=dict)
    labels: dict[int, dict[str, Any]] = field(default_factory=dict)
    links: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    scale: np.ndarray | None = None
    skip: list[int] | None = None
    pinned: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.skip is None:
            self.skip = list(self.tokens.special)

    @property
    def n_units(self) -> int:
        return int(self.acts.shape[1])

    def check_unit(self, unit: int) -> int:
        if not 0 <= int(unit) < self.n_units:
            raise InputError(f"{self.unit} {unit} out of range [0, {self.n_units})")
        return int(unit)

    def check_token(self, position: int) -> int:
        n = len(self.tokens.tokens)
        if not -n <= int(position) < n:
            raise InputError(f"token {position} out of range: the prompt has {n} tokens [0, {n})")
        return int(position) % n

    def scores(self) -> np.ndarray:
        """(n_units,) the ranking score: the sum of the activations on the ranked tokens (all
        but `skip`), over `scale` when given."""
        keep = np.setdiff1d(np.arange(len(self.acts)), self.skip or [])
        total = (self.acts[keep] if len(keep) else self.acts).sum(0)
        if self.scale is None:
            return total
        return np.divide(total, self.scale, out=np.zeros_like(total), where=self.scale > 0)

    def top_units(self, n: int = 10) -> list[int]:
        """The `n` units of highest `scores` (ties: larger largest activation), only units
        that fire on a ranked token."""
        score, peak = self.scores(), self.acts.max(0)
        order = np.lexsort((-peak, -score))
        return [int(j) for j in order[:n] if score[j] > 0]

    def shown(self, n: int = 10) -> list[int]:
        """The units the table shows: the `n` top ones, then the pinned ones."""
        top = self.top_units(n)
        return top + [self.check_unit(j) for j in self.pinned if j not in top]

    def token_units(self, position: int, n: int = 5) -> list[tuple[int, float]]:
        """The `n` strongest units on token `position`: [(unit, activation)], firing ones only."""
        row = self.acts[self.check_token(position)]
        order = np.argsort(-row, kind="stable")[:n]
        return [(int(j), float(row[j])) for j in order if row[j] > 0]

    def table(self, units: Sequence[int]) -> pd.DataFrame:
        """One row per unit: unit, max, sum, tokens fired, best label with precision and
        recall (when known), then one column per token `"i:token"` with its activation."""
        rows = []
        scores = self.scores()
        for j in units:
            j = self.check_unit(j)
            col = self.acts[:, j]
            label = self.labels.get(j, {})
            row: dict[str, Any] = {
                self.unit: j,
                "score": float(scores[j]),
                "max": float(col.max()),
                "sum": float(col.sum()),
                "fires": int((col > 0).sum()),
                "best label": label.get("label"),
                "precision": label.get("precision"),
                "recall": label.get("recall"),
            }
            for i, token in enumerate(self.tokens.tokens):
                row[f"{i}:{token}"] = float(col[i])
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self, n_top: int = 10, per_token: int = 3) -> dict[str, Any]:
        """JSON-ready: meta, tokens, notes, the top units' table rows, each token's strongest."""
        units = self.shown(n_top)
        scores = self.scores()
        return {
            **self.meta,
            "unit": self.unit,
            "n_units": self.n_units,
            "text": self.tokens.text,
            "tokens": self.tokens.tokens,
            "truncated": self.tokens.note,
            "notes": self.notes,
            "top": [
                {
                    self.unit: j,
                    "score": float(scores[j]),
                    "max": float(self.acts[:, j].max()),
                    "sum": float(self.acts[:, j].sum()),
                    "acts": self.acts[:, j].astype(float).tolist(),
                    **({"label": self.labels[j]} if j in self.labels else {}),
                    **({"link": self.links[j]} if j in self.links else {}),
                }
                for j in units
            ],
            "per_token": [
                [{self.unit: j, "act": a} for j, a in self.token_units(i, per_token)]
                for i in range(len(self.tokens.tokens))
            ],
        }


def text_report(view: PromptUnits, n_top: int = 10, detail: dict[str, Any] | None = None) -> str:
    """The plain-text report the CLI verbs print: notes, tokens with their strongest unit, the
    top units' table (activation per token), and a token's detail (`detail`, optional)."""
    name = view.unit
    lines = [f"{key}: {value}" for key, value in view.meta.items()]
    lines += [f"note: {note}" for note in ([view.tokens.note] if view.tokens.note else [])]
    lines += [f"note: {note}" for note in view.notes]
    lines.append("tokens (strongest " + name + "):")
    for i, token in enumerate(view.tokens.tokens):
        best = view.token_units(i, 1)
        where = f"{name} {best[0][0]} ({best[0][1]:.3f})" if best else "-"
        lines.append(f"  {i:>3} {token!r:<16} {where}")
    units = view.shown(n_top)
    if not units:
        lines.append(f"no {name} fires on this prompt")
    else:
        what = (
            "activation / its max on the reference rows" if view.scale is not None else "activation"
        )
        what = f"summed {what} over the tokens but {', '.join(view.tokens.tokens[i] for i in view.skip or []) or 'none'}"
        lines.append(f"top {name}s of the prompt (score: {what}; activation per token):")
        frame = view.table(units)
        if frame["best label"].isna().all():
            frame = frame.drop(columns=["best label", "precision", "recall"])
        else:
            frame["best label"] = frame["best label"].fillna("-")
            for column in ("precision", "recall"):
                frame[column] = [
                    f"{v:.3f}" if v == v and v is not None else "-" for v in frame[column]
                ]
        lines.append(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if detail is not None:
        lines.append(f"token {detail['position']} {detail['token']!r}:")
        for row in detail["units"]:
            lines.append(f"  {name} {row[name]} activation {row['act']:.3f}")
            if "up" in row:
                up = ", ".join(f"{t!r} {v:+.2f}" for t, v in row["up"])
                down = ", ".join(f"{t!r} {v:+.2f}" for t, v in row["down"])
                lines.append(f"    pushes up: {up}")
                lines.append(f"    pushes down: {down}")
        if detail.get("no_logits"):
            lines.append(f"  {detail['no_logits']}")
    return "\n".join(lines)


def token_detail(
    view: PromptUnits,
    position: int,
    directions: Callable[[list[int]], torch.Tensor] | None,
    w_u: torch.Tensor | None,
    decode: Callable[[int], str],
    n: int = 5,
    k: int = 8,
    why_not: str | None = None,
) -> dict[str, Any]:
    """Token `position`'s `n` strongest units and, when `w_u` and `directions` (units ->
    (m, d_model) output directions) are given, the tokens each pushes up and down
    (`logit_effects`); else `no_logits` says why (`why_not`)."""
    position = view.check_token(position)
    units = view.token_units(position, n)
    rows: list[dict[str, Any]] = [{view.unit: j, "act": a} for j, a in units]
    out: dict[str, Any] = {"position": position, "token": view.tokens.tokens[position]}
    if rows and w_u is not None and directions is not None:
        try:
            effects = logit_effects(directions([j for j, _ in units]), w_u, decode, k)
        except InputError as exc:
            out["no_logits"] = str(exc)
        else:
            for row, effect in zip(rows, effects, strict=True):
                row.update(effect)
    elif w_u is None:
        out["no_logits"] = why_not or "no unembedding: no logit effects"
    out["units"] = rows
    return out
