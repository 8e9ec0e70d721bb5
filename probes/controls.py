"""What makes a probe's accuracy mean something: a split by example, a control task, a majority
baseline and a confidence interval.

- `split_by_group`: train/test split of whole examples (all tokens of one sentence land on the
  same side, so a probe cannot pass by recognising the sentence);
- `control_labels`: the control task of Hewitt & Liang (2019, "Designing and Interpreting
  Probes with Control Tasks", section 2): every *type* (a token id) gets one label drawn at
  random from the real task's empirical label distribution, fixed for all its occurrences. A
  probe that scores well on it is memorising types; selectivity = accuracy - control accuracy.
  When rows have no token ids each row is its own type: the control is then random labels with
  the real class frequencies (chance for any probe, as nothing can be memorised across rows);
- `majority_baseline`: the test accuracy of always answering the most frequent train label;
- `cluster_bootstrap_ci`: percentile bootstrap over *test examples* (whole groups resampled
  with replacement), because tokens of one sentence are not independent; with one row per
  example it is the ordinary bootstrap.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import InputError


def split_by_group(
    groups: np.ndarray, test_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, test_rows) int arrays: a seeded random `test_fraction` of the distinct
    groups (at least one, and at least one left for training) goes to test."""
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    unique = np.unique(groups)
    if len(unique) < 2:
        raise InputError(
            f"a train/test split by example needs >= 2 examples (groups), got {len(unique)}"
        )
    n_test = min(len(unique) - 1, max(1, round(test_fraction * len(unique))))
    test_groups = np.random.default_rng(seed).permutation(unique)[:n_test]
    is_test = np.isin(groups, test_groups)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def control_labels(labels: np.ndarray, types: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n,) control labels: each distinct value of `types` (n,) gets one label sampled from the
    empirical distribution of `labels` (n,) (Hewitt & Liang 2019); the same type always gets
    the same control label. Works for class labels and for scalars alike."""
    labels = np.asarray(labels)
    if len(types) != len(labels):
        raise InputError(f"types have {len(types)} rows, labels {len(labels)}; they must match")
    unique, inverse = np.unique(types, return_inverse=True)
    rng = np.random.default_rng(seed)
    drawn = labels[rng.integers(0, len(labels), size=len(unique))]
    return drawn[inverse.reshape(-1)]


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Fraction of `test_labels` equal to the most frequent value of `train_labels`."""
    values, counts = np.unique(train_labels, return_counts=True)
    return float(np.mean(test_labels == values[np.argmax(counts)]))


def cluster_bootstrap_ci(
    correct: np.ndarray,
    groups: np.ndarray,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `correct` (n,) (0/1 or any score per row),
    resampling whole groups (n,) with replacement: each replicate's value is
    sum_g k_g * sum(correct in g) / sum_g k_g * size(g), k ~ Multinomial(G, 1/G)."""
    _, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(correct, dtype=np.float64))
    sizes = np.bincount(inverse).astype(np.float64)
    g = len(sizes)
    draws = np.random.default_rng(seed).multinomial(g, np.full(g, 1.0 / g), size=n_boot)
    values = (draws @ sums) / (draws @ sizes)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)
