"""The `digits` dataset: scikit-learn's bundled 8x8 handwritten digits (see datasets/digits.md).

The images come from `sklearn.datasets.load_digits()` (1797 images of 8x8 pixels with integer
values 0..16, 10 classes; a copy of the UCI "Optical Recognition of Handwritten Digits" test set
that ships inside scikit-learn, so no network is needed).

How the data are generated:

- each image becomes one `Example` with `text = ""` and `inputs` = the image as a float32
  array of shape (8, 8) divided by 16, so pixels lie in [0, 1] (the division is exact);
- with `rng = numpy.random.default_rng(seed)`, the order is `rng.permutation(1797)` over the
  images in load_digits order; `n_examples=N` takes the first N of that order;
- split (stratified, drawn from the same `rng` after the order): for each class c in 0..9, in
  turn, `rng.permutation` of that class's images (in load_digits order) is drawn; its first
  round(test_fraction * n_c) images (Python's round: halves to even) are the test set
  (`split` = 1), the rest train (`split` = 0). With the default test_fraction 0.25 that is 450
  test and 1347 train images, each class within half an image of 25%. The split is fixed per
  image for a given seed, so it does not depend on `n_examples`.

Labels per example: `class` (the digit 0..9), `split` (0 = train, 1 = test). No word labels.
`as_arrays` gives (x, y) arrays for training a plain model.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from workbench.data.registry import Example, register_dataset
from workbench.errors import InputError

TEST_FRACTION = 0.25
N_CLASSES = 10


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (1797, 8, 8) in [0, 1], classes int64 (1797,)), read-only."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    classes = digits.target.astype(np.int64)
    images.flags.writeable = False
    classes.flags.writeable = False
    return images, classes


def generate(
    n_examples: int | None, seed: int, test_fraction: float = TEST_FRACTION
) -> list[Example]:
    """The first `n_examples` (all 1797 when None) digit images in the order shuffled by `seed`,
    with labels `class` and `split` (0 = train, 1 = test; stratified by class)."""
    if not 0.0 <= test_fraction <= 1.0:
        raise InputError(f"test_fraction must be in [0, 1], got {test_fraction}")
    if n_examples is not None and n_examples <= 0:
        raise InputError(f"n_examples must be positive, got {n_examples}")
    images, classes = _load()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(classes))
    is_test = np.zeros(len(classes), dtype=bool)
    for c in range(N_CLASSES):
        members = np.flatnonzero(classes == c)
        n_test = round(test_fraction * len(members))
        is_test[rng.permutation(members)[:n_test]] = True
    if n_examples is not None:
        order = order[:n_examples]
    return [
        Example(
            text="",
            labels={"class": int(classes[i]), "split": int(is_test[i])},
            inputs=images[i].copy(),
        )
        for i in order.tolist()
    ]


@register_dataset("digits")
def digits(n_examples: int | None, seed: int) -> list[Example]:
    """scikit-learn's 1797 8x8 digit images in a seeded order, 25% of each class marked test."""
    return generate(n_examples, seed)


def train_test(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """The examples split by their `split` label: (train, test), each in the given order."""
    train = [e for e in examples if e.labels["split"] == 0]
    test = [e for e in examples if e.labels["split"] == 1]
    return train, test


def as_arrays(examples: list[Example], image: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): x float32 (n, 64) (flattened rows), or (n, 1, 8, 8) with `image=True` (one
    channel, for a convolution); y int64 (n,) = the `class` labels."""
    if examples:
        x = np.stack([np.asarray(e.inputs, dtype=np.float32) for e in examples])
    else:
        x = np.zeros((0, 8, 8), dtype=np.float32)
    if x.shape[1:] != (8, 8):
        raise InputError(f"digits inputs must be (8, 8) arrays, got {x.shape[1:]}")
    x = x.reshape(len(x), 1, 8, 8) if image else x.reshape(len(x), 64)
    y = np.array([e.labels["class"] for e in examples], dtype=np.int64)
    return x, y
