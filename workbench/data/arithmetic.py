"""The `modular-addition` dataset: (a + b) mod p for every pair (see datasets/modular-addition.md).

The task of the grokking experiments (Power et al. 2022, "Grokking: Generalization Beyond
Overfitting on Small Algorithmic Datasets"), in the input format of Nanda et al. 2023 ("Progress
measures for grokking via mechanistic interpretability"): three tokens `a b =`, and the model
predicts the answer (a + b) mod p at the `=` position.

How the data are generated:

- every pair (a, b) with a, b in [0, p) appears exactly once (p^2 examples; 9409 for p = 97);
- the pairs are shuffled by `numpy.random.default_rng(seed).permutation(p * p)`; pair index
  k = a * p + b;
- the text is `"{a} {b} ="` (whitespace-separated number tokens, e.g. `"12 5 ="`); the answer is
  not in the text;
- split: the example at 0-based position i of the shuffled order is in the training set
  (`split` = 0) iff floor((i + 1) * f) > floor(i * f), with f = train_fraction taken as an exact
  decimal fraction; otherwise it is a test example (`split` = 1). The training examples are thus
  spread evenly through the random order: the full set has floor(f * p^2) training examples
  (2822 for the defaults) and every prefix of N examples has floor(f * N) of them, so that
  `n_examples=N` (the first N of the order) keeps the split fraction.

Labels per example: `a`, `b`, `answer` = (a + b) mod p, `split` (0 = train, 1 = test).
Labels per word: `operand` = 0 for a, 1 for b, -1 for `=`.
Tokens: `vocabulary(p)` = ["0", ..., str(p - 1), "="], so a number's token id is its value and
`=` has id p; `VOCABULARY` is the vocabulary for the default p = 97. `as_arrays` gives the
token ids and answers as int64 arrays for training without a tokenizer.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from workbench.data.registry import Example, register_dataset
from workbench.errors import InputError

P = 97
TRAIN_FRACTION = 0.3
EQUALS = "="


def _check_p(p: int) -> None:
    if isinstance(p, bool) or not isinstance(p, int) or p < 2:
        raise InputError(f"p must be an integer >= 2, got {p!r}")


def vocabulary(p: int = P) -> list[str]:
    """The word-level vocabulary for modulus `p`: the numbers 0..p-1 (id = value), then `=` (id p)."""
    _check_p(p)
    return [str(i) for i in range(p)] + [EQUALS]


VOCABULARY: list[str] = vocabulary(P)


def generate(
    n_examples: int | None,
    seed: int,
    p: int = P,
    train_fraction: float = TRAIN_FRACTION,
) -> list[Example]:
    """The first `n_examples` (all p^2 when None) of the pairs (a, b) in the order shuffled by
    `seed`, with labels `a`, `b`, `answer` = (a + b) mod p and `split` (0 = train, 1 = test)."""
    _check_p(p)
    if not 0.0 <= train_fraction <= 1.0:
        raise InputError(f"train_fraction must be in [0, 1], got {train_fraction}")
    if n_examples is not None and n_examples <= 0:
        raise InputError(f"n_examples must be positive, got {n_examples}")
    total = p * p
    order = np.random.default_rng(seed).permutation(total)
    if n_examples is not None:
        order = order[:n_examples]
    is_train = _train_mask(len(order), train_fraction)
    examples = []
    for k, train in zip(order.tolist(), is_train.tolist(), strict=True):
        a, b = divmod(k, p)
        examples.append(
            Example(
                text=f"{a} {b} {EQUALS}",
                labels={"a": a, "b": b, "answer": (a + b) % p, "split": 0 if train else 1},
                word_labels={"operand": [0, 1, -1]},
            )
        )
    return examples


@register_dataset("modular-addition")
def modular_addition(n_examples: int | None, seed: int) -> list[Example]:
    """(a + b) mod 97 for all 9409 pairs in a seeded order, 30% of them marked train."""
    return generate(n_examples, seed)


def train_test(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """The examples split by their `split` label: (train, test), each in the given order."""
    train = [e for e in examples if e.labels["split"] == 0]
    test = [e for e in examples if e.labels["split"] == 1]
    return train, test


def as_arrays(examples: list[Example], p: int = P) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, answers): tokens int64 (n, 3) = ids in `vocabulary(p)` of the words of each
    text; answers int64 (n,) = the `answer` labels. `p` must be the modulus of the examples."""
    index = {word: i for i, word in enumerate(vocabulary(p))}
    tokens = np.empty((len(examples), 3), dtype=np.int64)
    for row, example in enumerate(examples):
        words = example.text.split()
        if len(words) != 3 or any(w not in index for w in words):
            raise InputError(f"not a modular-addition text for p={p}: {example.text!r}")
        tokens[row] = [index[w] for w in words]
    answers = np.array([e.labels["answer"] for e in examples], dtype=np.int64)
    return tokens, answers


def _train_mask(n: int, train_fraction: float) -> np.ndarray:
    """Position i is train iff floor((i + 1) f) > floor(i f), in exact rational arithmetic."""
    f = Fraction(str(train_fraction))
    counts = [i * f.numerator // f.denominator for i in range(n + 1)]  # Python ints: no overflow
    return np.diff(np.array(counts, dtype=np.int64)) > 0
