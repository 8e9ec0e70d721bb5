"""`workbench_app.lib.model_view`: the residual norms and the logit lens as block x position
heatmaps labelled by position and token."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench_app.lib.model_view import lens_figure, norms_figure, position_labels


def frame(value: str, values) -> pd.DataFrame:
    rows = [
        {"layer": layer, "position": p, "token": t, value: values[layer][p]}
        for layer in range(2)
        for p, t in enumerate(["the", "dog"])
    ]
    return pd.DataFrame(rows)


def test_norms_heatmap_blocks_by_positions():
    norms = frame("norm", [[1.0, 2.0], [3.0, 4.0]])
    labels = position_labels(norms)
    assert labels == ["0:the", "1:dog"]
    fig = norms_figure(norms, labels)
    np.testing.assert_array_equal(fig.data[0].z, [[1.0, 2.0], [3.0, 4.0]])
    assert list(fig.data[0].y) == ["block 0", "block 1"] and list(fig.data[0].x) == labels


def test_lens_heatmap_shows_the_lens_token_over_the_true_next_tokens_probability():
    lens = frame("next_token_prob", [[0.1, 0.2], [0.7, 0.9]])
    lens["top_token"] = ["a", "b", "dog", "ran"]
    fig = lens_figure(lens, ["0:the", "1:dog"])
    np.testing.assert_array_equal(fig.data[0].z, [[0.1, 0.2], [0.7, 0.9]])
    assert fig.data[0].text.tolist() == [["a", "b"], ["dog", "ran"]]
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1)
