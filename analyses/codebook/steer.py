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
    """grammar-lm topics: for each topic, force its codes (`topic_codes`) at every position
    while generating from neutral `prompts`, and measure the fraction of generated topic words
    (any word of `TOPIC_WORDS`) that belong to that topic, forced vs with the codebooks alone.
    Chance = 1 / 4 topics."""
    from workbench.data import grammar

    topics = token_topics(handle, examples)
    per_topic = []
    for topic in range(len(grammar.TOPICS)):
        table = topic_codes(books.layer(site), codes, topics, topic, n_forced)
        chosen = table["code"].tolist()
        gen = generate_with_codes(
            handle, books, prompts, site, on=chosen, max_new_tokens=max_new_tokens
        )
        row: dict[str, Any] = {"topic": grammar.TOPICS[topic], "codes": chosen}
        for name, texts in gen.items():
            row[f"{name}_on_topic"] = _on_topic(texts, topic)[0]
        per_topic.append(row)
    return {
        "forced_on_topic": float(np.mean([r["forced_on_topic"] for r in per_topic])),
        "codebooks_on_topic": float(np.mean([r["codebooks_on_topic"] for r in per_topic])),
        "chance": 1 / len(grammar.TOPICS),
        "per_topic": per_topic,
    }


def token_topics(handle, examples) -> np.ndarray:
    """(n, L) the grammar-lm topic index of each token of `examples` as the model reads them
    (`encode_examples`: BOS first, padded) whose word is a topic word (`TOPIC_WORDS`), -1
    elsewhere (function words, punctuation, BOS, pads)."""
    from analyses.codebook.model import encode_examples

    ids, _ = encode_examples(handle, examples)
    topic_of = _word_topics()
    tokens = [handle.tokenizer.convert_ids_to_tokens(row) for row in ids.cpu().tolist()]
    return np.array([[topic_of.get(tok, -1) for tok in row] for row in tokens])


def _word_topics() -> dict[str, int]:
    """word -> grammar-lm topic index, for every word of `grammar.TOPIC_WORDS`."""
    from workbench.data import grammar

    return {
        w: i
        for i, t in enumerate(grammar.TOPICS)
        for ws in grammar.TOPIC_WORDS[t].values()
        for w in ws
    }


def topic_codes(
    layer, codes: np.ndarray, topics: np.ndarray, topic: int, n_forced: int | None = None,
    min_fires: int = 10,
):  # fmt: skip
    """The codes to force for grammar-lm topic index `topic`: the `n_forced` (default
    k x groups, at most 3; at most k per group, so that all can be forced together) codes of
    `layer` with the highest precision P(the token is a word of `topic` | code fires) over
    `codes` (n, L, G*k), `topics` (n, L) from `token_topics`, among the codes that fire on at
    least `min_fires` tokens. Codes of the topic's own words, not of any token of a sentence
    about it: F1 or precision against the sentence's topic pick codes of function words and
    punctuation once codes are many, and on toy-lm (8 x 500 codes) forcing those moved
    'sports' not at all. A table: code, precision, recall, f1, fires."""
    from analyses.codebook.analysis import codes_for_label

    n = min(layer.k * layer.groups, 3) if n_forced is None else n_forced
    if not 1 <= n <= layer.k * layer.groups:
        raise InputError(
            f"n_forced={n} codes cannot be forced with k={layer.k} and {layer.groups} group(s); "
            f"use 1..{layer.k * layer.groups}"
        )
    table = codes_for_label(
        codes, topics, topic, layer.n_codes, top=layer.n_codes, by="precision",
        min_fires=min_fires,
    )  # fmt: skip
    if table.empty:
        raise InputError(f"no code fires on {min_fires} or more tokens; read more examples")
    group = table.code.to_numpy() // layer.codes_per_group
    rank_in_group = table.groupby(group).cumcount().to_numpy()  # best first within each group
    return table[rank_in_group < layer.k].head(n).reset_index(drop=True)


def _on_topic(texts: Sequence[str], topic: int) -> tuple[float, int]:
    """(fraction of the topic words in `texts` that belong to `topic`, number of topic words);
    a topic word is any word of `grammar.TOPIC_WORDS`. 0.0 when no topic word was generated."""
    word_topic = _word_topics()
    hits = [word_topic[w] for t in texts for w in t.split() if w in word_topic]
    return (float(np.mean([h == topic for h in hits])) if hits else 0.0), len(hits)


def topic_index(topic: str | int, dataset: str | None) -> int:
    """The index in `grammar.TOPICS` of `topic` (a name or an index); InputError naming the
    valid topics otherwise, or when `dataset` has no topic label."""
    from workbench.data import grammar

    if dataset not in (None, "grammar-lm"):
        raise InputError(
            f"the codebook model was trained on {dataset!r}, whose examples have no topic label; "
            f"--topic needs a grammar-lm model (toy-lm), topics {grammar.TOPICS}"
        )
    if str(topic) in grammar.TOPICS:
        return grammar.TOPICS.index(str(topic))
    if str(topic).isdigit() and int(topic) < len(grammar.TOPICS):
        return int(topic)
    raise InputError(f"unknown topic {topic!r}; valid topics: {', '.join(grammar.TOPICS)}")


@torch.no_grad()
def steer_topic(
    handle, books, site: str, topic: str | int, codes: np.ndarray, examples,
    n_forced: int | None = None, n_random: int = 5, prompts: Sequence[str] = TOPIC_PROMPTS,
    max_new_tokens: int = 12, seed: int = 0, min_fires: int = 10,
) -> dict[str, Any]:  # fmt: skip
    """Force the codes most associated with `topic` (`topic_codes` over `codes` (n, L, G*k)
    of `examples`) at every position while generating greedily from neutral `prompts`, and
    compare the fraction of generated topic words on `topic` with (a) the codebooks alone and
    (b) the
    random-code control: `n_random` draws of as many codes, uniformly among the codes that fire
    on `examples` (a dead code is no fair control) other than the chosen ones.

    Returns {"topic", "site", "codes", "precision" (of each chosen code), "forced_on_topic",
    "codebooks_on_topic", "shift" (forced minus codebooks alone), "random": {"draws": [{"codes", "on_topic", "n_topic_words"}],
    "on_topic_mean", "shift_mean", "shift_max"}, "beats_random" (shift above 0 and above every draw's),
    "chance", "n_topic_words"}."""
    from analyses.codebook.analysis import code_usage
    from workbench.data import grammar

    t = topic_index(topic, books.report.get("dataset"))
    layer = books.layer(site)
    table = topic_codes(layer, codes, token_topics(handle, examples), t, n_forced, min_fires)
    chosen = table["code"].tolist()
    gen = generate_with_codes(
        handle, books, prompts, site, on=chosen, max_new_tokens=max_new_tokens
    )
    forced, n_words = _on_topic(gen["forced"], t)
    plain, _ = _on_topic(gen["codebooks"], t)
    active = np.flatnonzero(code_usage(codes, books.n_codes) > 0)
    pool = np.setdiff1d(active, chosen)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_random):
        pick: list[int] = []
        for c in rng.permutation(pool):  # as many codes, with the same per-group limit
            g = int(c) // layer.codes_per_group
            if sum(int(p) // layer.codes_per_group == g for p in pick) < layer.k:
                pick.append(int(c))
            if len(pick) == len(chosen):
                break
        texts = generate_with_codes(
            handle, books, prompts, site, on=pick, max_new_tokens=max_new_tokens
        )["forced"]
        on_topic, words = _on_topic(texts, t)
        draws.append({"codes": pick, "on_topic": on_topic, "n_topic_words": words})
    random_shifts = [float(d["on_topic"]) - plain for d in draws]  # type: ignore[arg-type]
    return {
        "topic": grammar.TOPICS[t],
        "site": site,
        "codes": chosen,
        "precision": [round(float(p), 4) for p in table.precision],
        "forced_on_topic": forced,
        "codebooks_on_topic": plain,
        "shift": forced - plain,
        "n_topic_words": n_words,
        "random": {
            "draws": draws,
            "on_topic_mean": float(np.mean([d["on_topic"] for d in draws])) if draws else None,
            "shift_mean": float(np.mean(random_shifts)) if draws else None,
            "shift_max": float(np.max(random_shifts)) if draws else None,
        },
        # a steer moves the topic up (a shift above 0) by more than any random draw does
        "beats_random": bool(draws) and forced - plain > max(0.0, *random_shifts),
        "chance": 1 / len(grammar.TOPICS),
    }
