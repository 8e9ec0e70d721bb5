"""The `modular-addition` generator: answers, coverage, split, text format, token arrays."""

from collections import Counter

import numpy as np
import pytest

from workbench.data import arithmetic, load_dataset
from workbench.errors import InputError

P = 97


@pytest.fixture(scope="module")
def full():
    return arithmetic.generate(None, 0)


def test_registered_default_is_all_pairs_p97(full):
    assert load_dataset("modular-addition") == full
    assert len(full) == P * P == 9409


def test_deterministic_by_seed_and_seeds_differ_in_order(full):
    assert arithmetic.generate(None, 0) == full
    other = arithmetic.generate(None, 1)
    assert [e.text for e in other] != [e.text for e in full]
    assert sorted(e.text for e in other) == sorted(e.text for e in full)
    assert load_dataset("modular-addition", seed=1) == other


def test_answer_is_sum_mod_p(full):
    for e in full:
        assert e.labels["answer"] == (e.labels["a"] + e.labels["b"]) % P
        assert 0 <= e.labels["answer"] < P


def test_every_pair_exactly_once(full):
    pairs = Counter((e.labels["a"], e.labels["b"]) for e in full)
    assert set(pairs) == {(a, b) for a in range(P) for b in range(P)}
    assert set(pairs.values()) == {1}


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.1, 1 / 3])
def test_split_fraction(fraction):
    examples = arithmetic.generate(None, 3, train_fraction=fraction)
    n_train = sum(e.labels["split"] == 0 for e in examples)
    assert abs(n_train - fraction * P * P) <= 1
    assert {e.labels["split"] for e in examples} == {0, 1}
    train, test = arithmetic.train_test(examples)
    assert len(train) == n_train and len(train) + len(test) == len(examples)


def test_split_keeps_fraction_in_prefixes_and_changes_with_seed(full):
    for n in (10, 100, 1000):
        n_train = sum(e.labels["split"] == 0 for e in full[:n])
        assert abs(n_train - 0.3 * n) <= 1
    train0 = {e.text for e in full if e.labels["split"] == 0}
    train1 = {e.text for e in arithmetic.generate(None, 1) if e.labels["split"] == 0}
    assert train0 != train1


def test_text_parses_back_and_word_labels(full):
    for e in full:
        a, b, eq = e.text.split(" ")
        assert (int(a), int(b), eq) == (e.labels["a"], e.labels["b"], "=")
        assert e.text == f"{e.labels['a']} {e.labels['b']} ="
        assert e.word_labels == {"operand": [0, 1, -1]}
        assert e.inputs is None


def test_n_examples_is_a_prefix(full):
    assert arithmetic.generate(50, 0) == full[:50]
    assert load_dataset("modular-addition", n_examples=7) == full[:7]


def test_vocabulary_and_as_arrays_round_trip(full):
    assert [str(i) for i in range(P)] + ["="] == arithmetic.VOCABULARY
    tokens, answers = arithmetic.as_arrays(full)
    assert tokens.shape == (len(full), 3) and tokens.dtype == np.int64
    assert answers.shape == (len(full),) and answers.dtype == np.int64
    for row, e in zip(tokens, full, strict=True):
        assert " ".join(arithmetic.VOCABULARY[i] for i in row) == e.text
    assert (tokens[:, 2] == P).all()
    np.testing.assert_array_equal(answers, (tokens[:, 0] + tokens[:, 1]) % P)


def test_other_modulus():
    examples = arithmetic.generate(None, 0, p=7, train_fraction=0.5)
    assert len(examples) == 49
    assert {(e.labels["a"], e.labels["b"]) for e in examples} == {
        (a, b) for a in range(7) for b in range(7)
    }
    tokens, answers = arithmetic.as_arrays(examples, p=7)
    assert tokens.max() == 7 == arithmetic.vocabulary(7).index("=")
    np.testing.assert_array_equal(answers, (tokens[:, 0] + tokens[:, 1]) % 7)
    with pytest.raises(InputError):
        arithmetic.as_arrays(arithmetic.generate(5, 0), p=7)  # numbers >= 7 not in vocabulary


@pytest.mark.parametrize(
    "kwargs", [{"p": 1}, {"p": 9.0}, {"train_fraction": 1.5}, {"train_fraction": -0.1}]
)
def test_invalid_arguments(kwargs):
    with pytest.raises(InputError):
        arithmetic.generate(None, 0, **kwargs)
