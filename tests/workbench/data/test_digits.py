"""The `digits` generator: size, classes, pixels against load_digits, stratified split, arrays."""

from collections import Counter

import numpy as np
import pytest
from sklearn.datasets import load_digits

from workbench.data import digits, load_dataset
from workbench.errors import InputError

SKLEARN_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


@pytest.fixture(scope="module")
def full():
    return digits.generate(None, 0)


def _key(e):
    return e.inputs.tobytes(), e.labels["class"], e.labels["split"]


def test_registered_size_and_classes(full):
    assert [_key(e) for e in load_dataset("digits")] == [_key(e) for e in full]
    assert len(full) == 1797
    counts = Counter(e.labels["class"] for e in full)
    assert [counts[c] for c in range(10)] == SKLEARN_COUNTS
    assert set(counts) == set(range(10))
    for e in full:
        assert e.text == "" and e.word_labels == {}
        assert set(e.labels) == {"class", "split"}


def test_deterministic_by_seed_and_seeds_differ_in_order(full):
    assert [_key(e) for e in digits.generate(None, 0)] == [_key(e) for e in full]
    other = digits.generate(None, 1)
    assert [e.inputs.tobytes() for e in other] != [e.inputs.tobytes() for e in full]
    assert sorted(e.inputs.tobytes() for e in other) == sorted(e.inputs.tobytes() for e in full)


def test_pixels_match_load_digits_over_16(full):
    reference = load_digits()
    expected = Counter(
        (img.astype(np.float32).tobytes(), int(c))
        for img, c in zip(reference.images / 16, reference.target, strict=True)
    )
    got = Counter((e.inputs.tobytes(), e.labels["class"]) for e in full)
    assert got == expected
    for e in full:
        assert e.inputs.dtype == np.float32 and e.inputs.shape == (8, 8)
        assert e.inputs.min() >= 0.0 and e.inputs.max() <= 1.0
    stacked = np.stack([e.inputs for e in full])
    assert stacked.max() == 1.0 and stacked.min() == 0.0


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_stratified_split(seed):
    examples = digits.generate(None, seed)
    for c in range(10):
        members = [e for e in examples if e.labels["class"] == c]
        n_test = sum(e.labels["split"] == 1 for e in members)
        assert abs(n_test - 0.25 * len(members)) <= 2
    train, test = digits.train_test(examples)
    assert len(test) == 450 and len(train) == 1347


def test_split_is_per_image_and_changes_with_seed(full):
    split0 = {e.inputs.tobytes(): e.labels["split"] for e in full}
    prefix = digits.generate(100, 0)
    assert [_key(e) for e in prefix] == [_key(e) for e in full[:100]]
    assert all(split0[e.inputs.tobytes()] == e.labels["split"] for e in prefix)
    other = {e.inputs.tobytes(): e.labels["split"] for e in digits.generate(None, 1)}
    assert other != split0


def test_other_test_fraction():
    examples = digits.generate(None, 0, test_fraction=0.5)
    n_test = sum(e.labels["split"] for e in examples)
    assert abs(n_test - 0.5 * 1797) <= 5
    with pytest.raises(InputError):
        digits.generate(None, 0, test_fraction=1.5)


def test_as_arrays(full):
    x, y = digits.as_arrays(full)
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, [e.labels["class"] for e in full])
    np.testing.assert_array_equal(x[3].reshape(8, 8), full[3].inputs)
    images, y2 = digits.as_arrays(full[:10], image=True)
    assert images.shape == (10, 1, 8, 8) and images.dtype == np.float32
    np.testing.assert_array_equal(images[:, 0], np.stack([e.inputs for e in full[:10]]))
    np.testing.assert_array_equal(y2, y[:10])


def test_more_examples_than_a_fixed_dataset_has_is_an_error():
    """`text` holds a fixed number of passages: asking for more names both counts."""
    from workbench.data.registry import load_dataset

    available = len(load_dataset("text"))
    assert len(load_dataset("text", available)) == available
    with pytest.raises(InputError, match=rf"has {available} examples; n_examples={available + 1}"):
        load_dataset("text", available + 1)
    with pytest.raises(InputError, match="has 1797 examples; n_examples=5000"):
        load_dataset("digits", 5000)
