"""analyses.explore.api against ground truth: scikit-learn's PCA, planted units and clusters, closed
form label shares, and the selection's URL encoding."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.decomposition import PCA

from analyses.explore.api import (
    contexts,
    decode_rows,
    encode_rows,
    label_makeup,
    project,
    row_labels,
    sample_rows,
    selection_panels,
    unit_effects,
)
from workbench.errors import InputError


def test_pca_map_matches_sklearn_up_to_sign_and_is_sign_stable():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)) * np.linspace(5, 0.5, 12) + 3.0
    coords, info = project(x, "pca")
    reference = PCA(n_components=2).fit(x)
    expected = reference.transform(x)
    for k in range(2):
        sign = np.sign(coords[:, k] @ expected[:, k])
        np.testing.assert_allclose(coords[:, k], sign * expected[:, k], atol=1e-8)
    np.testing.assert_allclose(info["explained"], reference.explained_variance_ratio_, rtol=1e-10)
    assert info["axes"][0].startswith("PC1 (")
    flipped, _ = project(-x, "pca")  # the same cloud mirrored: the same picture, not its mirror
    np.testing.assert_allclose(np.abs(flipped), np.abs(coords), atol=1e-8)
    loadings = np.linalg.svd(x - x.mean(0), full_matrices=False)[2][:2]
    top = np.abs(loadings).argmax(axis=1)
    # the largest-|loading| unit moves the map's axes positively
    for k in range(2):
        assert np.corrcoef(coords[:, k], x[:, top[k]])[0, 1] > 0


def test_pca_map_of_rank_one_data_and_bad_input():
    x = np.outer(np.arange(10.0), np.ones(4))
    coords, info = project(x, "pca")
    assert info["explained"][0] == pytest.approx(1.0)
    np.testing.assert_allclose(coords[:, 1], 0.0, atol=1e-9)
    with pytest.raises(InputError, match="method='tsne'; valid: pca, umap"):
        project(x, "tsne")
    with pytest.raises(InputError, match="need \\(n >= 3, d\\)"):
        project(x[:2], "pca")


@pytest.mark.slow
def test_umap_map_keeps_planted_clusters_apart():
    rng = np.random.default_rng(1)
    centres = np.zeros((2, 16))
    centres[1, 0] = 30.0
    x = np.concatenate([c + rng.normal(size=(60, 16)) for c in centres])
    coords, info = project(x, "umap", seed=0)
    assert info["explained"] is None and coords.shape == (120, 2)
    a, b = coords[:60], coords[60:]
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    spread = max(
        np.linalg.norm(a - a.mean(0), axis=1).max(), np.linalg.norm(b - b.mean(0), axis=1).max()
    )
    assert gap > 2 * spread


def test_unit_effects_finds_the_planted_unit_with_cohens_d():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 20))
    selected = np.zeros(400, bool)
    selected[:100] = True
    x[selected, 7] += 3.0
    units = unit_effects(x, selected, top=3)
    assert units["unit"].iloc[0] == 7
    a, b = x[selected, 7], x[~selected, 7]
    pooled = np.sqrt((99 * a.var(ddof=1) + 299 * b.var(ddof=1)) / 398)
    assert units["effect"].iloc[0] == pytest.approx((a.mean() - b.mean()) / pooled, rel=1e-12)
    assert units["mean_selected"].iloc[0] == pytest.approx(a.mean())
    constant = unit_effects(np.ones((5, 2)), np.array([1, 1, 0, 0, 0], bool))
    assert (constant["effect"] == 0).all()
    with pytest.raises(InputError, match="need selected and unselected rows, got 5 selected"):
        unit_effects(np.ones((5, 2)), np.ones(5, bool))


def test_label_makeup_shares():
    labels = np.array(["a", "a", "b", "b", "b", "c"])
    selected = np.array([1, 1, 1, 1, 0, 0], bool)
    out = label_makeup(labels, selected).set_index("value")
    assert list(out.index) == ["a", "b", "c"]  # lifts: a 2/4 - 2/6, b 2/4 - 3/6, c 0 - 1/6
    assert out.loc["a", "share_selected"] == pytest.approx(0.5)
    assert out.loc["b", "share_all"] == pytest.approx(0.5)
    assert out.loc["c", "n_selected"] == 0


def test_selection_panels_take_store_rows_and_ignore_unmapped_ones():
    rng = np.random.default_rng(3)
    acts = rng.normal(size=(6, 3))
    rows = np.array([2, 5, 7, 11, 12, 20])
    labels = {"pos": np.arange(21) % 2}
    out = selection_panels(acts, rows, np.array([5, 7, 8, 30]), labels, "pos")
    assert out["mask"].tolist() == [False, True, True, False, False, False]
    assert out["makeup"].set_index("value").loc["1", "n_selected"] == 2  # rows 5, 7 are odd
    assert out["units"] is not None and len(out["units"]) == 3
    everything = selection_panels(acts, rows, rows, labels, None)
    assert everything["units"] is None and everything["makeup"] is None


def test_rows_round_trip_through_compact_ranges():
    rows = np.array([9, 0, 1, 2, 7, 10, 2])
    assert encode_rows(rows) == "0-2,7,9-10"
    np.testing.assert_array_equal(decode_rows("0-2,7,9-10", 11), [0, 1, 2, 7, 9, 10])
    assert encode_rows(np.array([], int)) == "" and decode_rows(" ", 5).size == 0
    with pytest.raises(InputError, match="rows run from 0 to 10"):
        decode_rows("3-11", 11)
    with pytest.raises(InputError, match="expected ROW or FIRST-LAST"):
        decode_rows("3,x", 11)
    with pytest.raises(InputError, match="'5-2'"):
        decode_rows("5-2", 11)


def test_sample_rows():
    assert sample_rows(5, 10).tolist() == [0, 1, 2, 3, 4]
    picked = sample_rows(1000, 50, seed=4)
    assert len(np.unique(picked)) == 50 and (np.diff(picked) > 0).all()
    assert picked.tolist() == sample_rows(1000, 50, seed=4).tolist()
    with pytest.raises(InputError, match="max_points=0"):
        sample_rows(10, 0)


def fake_store():
    """Two examples of 4 and 3 tokens; token id t decodes to f"w{t}"."""
    return SimpleNamespace(
        example_index=lambda: np.array([0, 0, 0, 0, 1, 1, 1]),
        token_ids=lambda: np.array([10, 11, 12, 13, 20, 21, 22]),
        positions=lambda: np.array([0, 1, 2, 3, 0, 1, 2]),
        row_labels=lambda: {"pos": np.array([1, 2, 3, 4, 5, 6, 7])},
        example_labels=lambda: {"topic": np.array([8, 9]), "pos": np.array([0, 1])},
    )


def test_contexts_stay_inside_their_example():
    out = contexts(fake_store(), np.array([3, 4, 1]), lambda t: f"w{t}", window=2)
    assert out["context"].tolist() == ["w11 w12 [w13]", "[w20] w21", "w10 [w11] w12"]
    assert out["example"].tolist() == [0, 1, 0] and out["token"].tolist() == ["w13", "w20", "w11"]


def test_contexts_of_rows_without_tokens_are_empty():
    store = fake_store()
    store.token_ids = lambda: np.full(7, -1)
    out = contexts(store, np.array([1, 5]), None)
    assert out["token"].tolist() == ["", ""] and out["context"].tolist() == ["", ""]
    assert out["example"].tolist() == [0, 1]


def test_row_labels_spread_example_labels_over_rows():
    labels = row_labels(fake_store())
    assert labels["topic"].tolist() == [8, 8, 8, 8, 9, 9, 9]
    assert labels["example:pos"].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert labels["pos"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert labels["position"].tolist() == [0, 1, 2, 3, 0, 1, 2]
