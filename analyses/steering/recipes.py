"""Ready-made steering experiments on the embedded datasets (the zoo findings, the CLI's
`--dataset` extraction, the app's playground).

- `contrast_inputs`: two input sets from a labelled dataset (texts for language models, a
  stacked (n, ...) tensor for array datasets such as digits).
- `grammar_targets`: the exact token sets of a grammar-lm concept (sentiment words of one
  polarity vs the other; the content words of one topic vs the other topics), so the behaviour
  metric is exact (see `workbench.data.grammar`).
- `lm_sweep` / `class_sweep`: sites x coefficients sweeps, with random controls, as a `Result`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from analyses.steering import extract, measure, report
from analyses.steering.vectors import SteeringVector
from workbench.analysis.results import Result
from workbench.errors import InputError
from workbench.models.handle import ModelHandle


def contrast_inputs(
    dataset: str,
    label: str,
    positive: int,
    negative: int | None = None,
    n_examples: int | None = 400,
    seed: int = 1,
) -> tuple[Any, Any]:
    """(positive inputs, negative inputs) of `dataset`'s examples whose example label `label`
    equals `positive` / `negative` (None: any other value); n_examples None: all."""
    from workbench.data import load_dataset

    examples = load_dataset(dataset, n_examples, seed)
    names = sorted(examples[0].labels) if examples else []
    if label not in names:
        raise InputError(f"dataset {dataset!r} has no example label {label!r}; valid: {names}")
    groups: list[Any] = []
    for value in (positive, negative):
        chosen = [
            e
            for e in examples
            if (e.labels[label] == value if value is not None else e.labels[label] != positive)
        ]
        if not chosen:
            values = sorted({e.labels[label] for e in examples})
            raise InputError(f"no {dataset} example has {label}={value}; values: {values}")
        if chosen[0].inputs is not None:
            groups.append(torch.from_numpy(np.stack([np.asarray(e.inputs) for e in chosen])))
        else:
            groups.append([e.text for e in chosen])
    return groups[0], groups[1]


def grammar_targets(concept: str, value: int) -> tuple[list[str], list[str]]:
    """(target words, opposite words) of grammar-lm's `sentiment` (0/1) or `topic` (0..3)."""
    from workbench.data.grammar import SENTIMENT_WORDS, TOPIC_WORDS, TOPICS

    if concept == "sentiment":
        if value not in SENTIMENT_WORDS:
            raise InputError(f"sentiment value {value}; valid: 0 (negative), 1 (positive)")
        words = {s: [w for ws in SENTIMENT_WORDS[s].values() for w in ws] for s in SENTIMENT_WORDS}
        return words[value], words[1 - value]
    if concept == "topic":
        if not 0 <= value < len(TOPICS):
            raise InputError(f"topic value {value}; valid: 0..{len(TOPICS) - 1} ({TOPICS})")
        words = {
            t: [w for ws in TOPIC_WORDS[name].values() for w in ws] for t, name in enumerate(TOPICS)
        }
        return words[value], [w for t, ws in words.items() if t != value for w in ws]
    raise InputError(f"grammar-lm concept {concept!r}; valid: sentiment, topic")


def token_ids(handle: ModelHandle, words: Sequence[str]) -> list[int]:
    """Ids of the words that are single tokens of the model's vocabulary (others are dropped;
    none at all is an error)."""
    tok = handle.tokenizer
    if tok is None:
        raise InputError(f"model {handle.info.name!r} has no tokenizer")
    ids = []
    for word in words:
        pieces = tok(word, add_special_tokens=False)["input_ids"]
        if len(pieces) == 1 and pieces[0] != tok.unk_token_id:
            ids.append(int(pieces[0]))
    if not ids:
        raise InputError(f"none of {list(words)[:5]}... is a single token of {handle.info.name!r}")
    return ids


def sweep_result(
    frame: pd.DataFrame, name: str, params: dict[str, Any], handle: ModelHandle
) -> Result:
    """Headline: per site, the concept's effect at the largest coefficient and the mean of the
    random controls' (both as the behaviour metric, given by params['metric'], minus its value
    at coefficient 0); `best_site` and `verdict` by `analyses.steering.report.best_site` (None
    and a sentence saying so when no site moved the concept)."""
    metric = params["metric"]
    base, effects = report.sweep_effects(frame, metric)
    verdict = report.best_site(effects)
    headline = {
        "metric": metric,
        "baseline": base,
        "effect_at_max_coeff": effects,
        "best_site": verdict.site,
        "verdict": verdict.sentence,
        "effect_floor": report.EFFECT_FLOOR,
        "control_ratio": report.CONTROL_RATIO,
    }
    return Result(name, frame, headline, params, handle.provenance())


def lm_sweep(
    handle: ModelHandle,
    sites: Sequence[str],
    concept: str = "sentiment",
    value: int = 1,
    coeffs: Sequence[float] = (-8.0, -4.0, 0.0, 4.0, 8.0),
    *,
    n_prompts: int = 24,
    n_extract: int = 400,
    controls: int = 2,
    max_new_tokens: int = 8,
    read: str | int = extract.DEFAULT_READ,
) -> tuple[Result, dict[str, SteeringVector]]:
    """Steer a grammar-lm model toward `concept`=`value`: diff-in-means vectors per site (from
    `n_extract` examples), applied after two-word prompts of held-out examples; behaviour =
    mass on the target words minus the opposite words; collateral = loss and KL on held-out
    examples."""
    from workbench.data import load_dataset

    negative = 1 - value if concept == "sentiment" else None  # topic: every other topic
    positive_inputs, negative_inputs = contrast_inputs(
        "grammar-lm", concept, value, negative, n_extract
    )
    target_words, opposite_words = grammar_targets(concept, value)
    target, opposite = token_ids(handle, target_words), token_ids(handle, opposite_words)
    held_out = load_dataset("grammar-lm", n_prompts, 7)
    prompts = [" ".join(e.text.split()[:2]) for e in held_out]
    neutral = [e.text for e in held_out[: max(4, n_prompts // 3)]]
    vectors = {
        site: extract.mean_difference(handle, positive_inputs, negative_inputs, site, read)
        for site in sites
    }

    def run(vector: SteeringVector) -> pd.DataFrame:
        behaviour = measure.lm_behaviour(
            handle, vector, coeffs, prompts, target, opposite, max_new_tokens=max_new_tokens
        )
        return pd.concat([behaviour, measure.lm_collateral(handle, vector, coeffs, neutral)])

    frame = measure.sweep(run, list(vectors.values()), controls=controls)
    params = {
        "concept": concept, "value": value, "coeffs": list(coeffs), "read": read,
        "n_prompts": n_prompts, "n_extract": n_extract, "controls": controls,
        "metric": "target_minus_opposite", "where": "after",
    }  # fmt: skip
    return sweep_result(frame, "steering-sweep", params, handle), vectors


def class_sweep(
    handle: ModelHandle,
    site: str,
    source_class: int,
    target_class: int,
    coeffs: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0),
    *,
    dataset: str = "digits",
    controls: int = 2,
) -> tuple[Result, SteeringVector]:
    """A "delta" vector mean(h | target class) - mean(h | source class) at `site` of a
    classifier, added to the source class's held-out inputs: fraction predicted as the target
    class, and its mean probability, per coefficient (coefficient 1 moves the class mean
    exactly onto the other's at that site)."""
    from workbench.data import load_dataset

    examples = load_dataset(dataset)
    train = [e for e in examples if e.labels.get("split", 0) == 0]
    test = [e for e in examples if e.labels.get("split", 0) == 1]

    def stack(items: list[Any], cls: int) -> torch.Tensor:
        chosen = [np.asarray(e.inputs) for e in items if e.labels["class"] == cls]
        if not chosen:
            raise InputError(f"{dataset} has no example of class {cls}")
        return torch.from_numpy(np.stack(chosen)).float()

    vector = extract.mean_difference(
        handle, stack(train, target_class), stack(train, source_class), site
    )
    inputs = stack(test, source_class)

    def run(v: SteeringVector) -> pd.DataFrame:
        def fraction(out: torch.Tensor) -> float:
            return float((out.argmax(-1) == target_class).float().mean())

        def probability(out: torch.Tensor) -> float:
            return float(out.softmax(-1)[:, target_class].mean())

        return pd.concat(
            [
                measure.module_behaviour(
                    handle, v, coeffs, inputs, fraction, name="target_fraction"
                ),
                measure.module_behaviour(
                    handle, v, coeffs, inputs, probability, name="target_probability"
                ),
            ]
        )

    frame = measure.sweep(run, [vector], controls=controls)
    params = {
        "dataset": dataset, "site": site, "source_class": source_class,
        "target_class": target_class, "coeffs": list(coeffs), "controls": controls,
        "metric": "target_fraction",
    }  # fmt: skip
    return sweep_result(frame, "steering-sweep", params, handle), vector
