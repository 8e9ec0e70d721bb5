"""Steering with codes: force chosen codes on (or off) at a site during a forward pass or
generation, and measure the effect (Tamkin, Taufeeque, Goodman 2023: "find codes that activate
when the desired behavior is present, then activate those same codes during generation").

`fsm_state_forcing` is the TokFSM test: for a target state S, force S's code at the last position
of a prefix whose true state is s != S, and count the argmax next-token predictions that are
legal transitions from S (an edge of S emits that token, `FiniteStateMachine.token`) and from s.
Controls: the same predictions without forcing (legal from S by accident), and chance = the mean
over targets of out_degree(S) / n_tokens (a uniformly random token is legal from S).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from analyses.codebook.layer import force
from workbench.errors import InputError

#: fsm token t<i> has model id i + N_SPECIAL (the zoo's word tokenizer puts 3 specials first).
N_SPECIAL = 3


@torch.no_grad()
def generate_with_codes(
    handle, books, prompts: Sequence[str], site: str, on: Sequence[int] = (),
    off: Sequence[int] = (), positions: str | int = "all", max_new_tokens: int = 8,
) -> dict[str, list[str]]:  # fmt: skip
    """Greedy continuations of `prompts` with the codebooks in place, without and with the codes
    forced at `site` (every generation step when positions="all" or "last")."""
    layer = books.layer(site)
    books.eval()
    out: dict[str, list[str]] = {}
    with books.insert(handle):
        plain = handle.generate(list(prompts), max_new_tokens=max_new_tokens)
        with force(layer, on, off, positions):
            forced = handle.generate(list(prompts), max_new_tokens=max_new_tokens)
    for name, toks in (("codebooks", plain), ("forced", forced)):
        new = toks[:, -max_new_tokens:]
        out[name] = [handle.tokenizer.decode(row, skip_special_tokens=True) for row in new]
    return out


@torch.no_grad()
def fsm_state_forcing(
    handle, books, site: str, state_codes: dict[int, int], examples, n_per_state: int = 32,
    seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """Fractions of next-token predictions legal from the target state S (forced / unforced) and
    from the true state s, over `n_per_state` prefixes of `examples` per target in
    `state_codes` (state -> code). See the module docstring."""
    from analyses.codebook.analysis import fsm_state_labels
    from analyses.codebook.model import encode_examples, lm_view
    from workbench.data import fsm

    if not state_codes:
        raise InputError("state_codes is empty: map at least one state to its code")
    machine = fsm.build_machine()
    layer = books.layer(site)
    ids, mask = encode_examples(handle, examples)
    if not bool(mask.all()):
        raise InputError("fsm walks must share one length")
    labels = fsm_state_labels(examples)  # (n, L + 1)
    rng = np.random.default_rng(seed)
    model = lm_view(handle)
    books.eval()
    tallies = {k: 0 for k in ("forced_target", "forced_original", "plain_target", "plain_original")}
    n_total = 0
    chance = []
    with books.insert(handle):
        for target, code in state_codes.items():
            rows = rng.choice(len(ids), n_per_state)
            cut = int(rng.integers(1, ids.shape[1]))  # prefix = positions 0..cut
            orig = labels[rows, cut]
            keep = orig != target
            if not keep.any():
                continue
            prefix = ids[rows][:, : cut + 1]
            pmask = torch.ones_like(prefix)
            plain = model(input_ids=prefix, attention_mask=pmask).logits[:, -1].argmax(-1)
            with force(layer, on=[code], positions="last"):
                forced = model(input_ids=prefix, attention_mask=pmask).logits[:, -1].argmax(-1)
            for name, pred in (("forced", forced), ("plain", plain)):
                tok = pred.cpu().numpy() - N_SPECIAL
                tallies[f"{name}_target"] += int(
                    (machine.token[target] == tok[:, None]).any(-1)[keep].sum()
                )
                tallies[f"{name}_original"] += int(
                    (machine.token[orig] == tok[:, None]).any(-1)[keep].sum()
                )
            n_total += int(keep.sum())
            chance.append(machine.out_degree[target] / machine.n_tokens)
    result = {f"{k}_legal": v / max(n_total, 1) for k, v in tallies.items()}
    result["chance_legal"] = float(np.mean(chance)) if chance else float("nan")
    result["n_predictions"] = n_total
    return result


def fsm_state_forcing_saved(handle, books, site: str, n_examples: int = 200) -> dict[str, float]:
    """`fsm_state_forcing` with each state's code = its best code by purity on seed-2 walks,
    measured on held-out walks (seed 1)."""
    from analyses.codebook.analysis import fsm_state_labels, purity, reference_codes
    from workbench.data import fsm

    examples, _, codes = reference_codes(handle, books, n_examples, dataset="fsm")
    table = purity(codes[site], fsm_state_labels(examples), books.n_codes)
    state_codes = dict(zip(table.label.tolist(), table.code.tolist(), strict=True))
    result = fsm_state_forcing(handle, books, site, state_codes, fsm.generate(n_examples, 1))
    result["purity_mean_precision"] = float(table.precision.mean())
    return result


#: neutral prompts for topic steering on toy-lm (grammar-lm function words only)
TOPIC_PROMPTS = ("the", "she said that the", "yesterday the", "we saw a", "every", "this")


@torch.no_grad()
def topic_steering(
    handle, books, site: str, codes: np.ndarray, examples, n_forced: int | None = None,
    prompts: Sequence[str] = TOPIC_PROMPTS, max_new_tokens: int = 12,
) -> dict[str, Any]:  # fmt: skip
    """grammar-lm topics: for each topic, force its `n_forced` (default k, at most 3) most
    selective codes (by F1 over `codes` (n, L, k) of `examples`) at every position while
    generating from neutral `prompts`, and measure the fraction of generated topic words (any
    word of `TOPIC_WORDS`) that belong to that topic, forced vs with the codebooks alone.
    Chance = 1 / 4 topics."""
    from analyses.codebook.analysis import codes_for_label, example_labels
    from workbench.data import grammar

    word_topic = {
        w: i
        for i, t in enumerate(grammar.TOPICS)
        for ws in grammar.TOPIC_WORDS[t].values()
        for w in ws
    }
    labels = example_labels(examples, "topic", codes.shape[1])
    n = min(books.k, 3) if n_forced is None else n_forced
    per_topic = []
    for topic in range(len(grammar.TOPICS)):
        chosen = codes_for_label(codes, labels, topic, books.n_codes, top=n).code.tolist()
        gen = generate_with_codes(
            handle, books, prompts, site, on=chosen, max_new_tokens=max_new_tokens
        )
        row: dict[str, Any] = {"topic": grammar.TOPICS[topic], "codes": chosen}
        for name, texts in gen.items():
            hits = [word_topic[w] for t in texts for w in t.split() if w in word_topic]
            row[f"{name}_on_topic"] = float(np.mean([h == topic for h in hits])) if hits else 0.0
        per_topic.append(row)
    return {
        "forced_on_topic": float(np.mean([r["forced_on_topic"] for r in per_topic])),
        "codebooks_on_topic": float(np.mean([r["codebooks_on_topic"] for r in per_topic])),
        "chance": 1 / len(grammar.TOPICS),
        "per_topic": per_topic,
    }
