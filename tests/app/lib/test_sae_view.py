"""`workbench_app.lib.sae_view`: a feature report's charts, the latent opened first and a
latent's panels."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from workbench_app.lib.sae_view import (
    agreement_figure,
    context_html,
    density_figure,
    first_latent,
    histogram_figure,
    training_figure,
)


def stats(density):
    edges = np.array([-4.0, -3.0, -2.0])
    return SimpleNamespace(
        density=np.array(density), histogram=lambda: (np.array([1, 2]), edges, 3)
    )


def test_density_and_training_charts():
    fig = density_figure(stats([0.0, 0.1, 0.0, 0.0, 0.2, 0.0]))
    assert list(fig.data[0].x) == [-3.5, -2.5] and "3 dead of 6" in fig.layout.title.text
    log = [{"event": "start"}, {"event": "step", "tokens": 10, "dead_fraction": 0.5}]
    assert [t.name for t in training_figure(log).data] == ["dead_fraction"]
    assert training_figure([{"event": "start"}]) is None


def test_first_latent_is_the_best_match_else_the_densest():
    assert first_latent(stats([0.1, 0.5, 0.2]), pd.DataFrame({"latent": [2, 0]})) == 2
    assert first_latent(stats([0.1, 0.5, 0.2]), pd.DataFrame()) == 1


def test_latent_panels():
    report = {"histogram": ([3, 1], [0.0, 0.5, 1.0]), "labels": []}
    assert list(histogram_figure(report).data[0].x) == [0.0, 0.5]
    assert agreement_figure(report) is None
    report["labels"] = [{"label": "pos", "value": "NN", "precision": 0.9, "recall": 0.4}]
    fig = agreement_figure(report)
    assert [t.name for t in fig.data] == ["precision", "recall"] and list(fig.data[0].x) == [
        "pos=NN"
    ]
    html = context_html({"tokens": ["a", "<b>"], "acts": [0.0, 2.0], "focus": 1}, 2.0)
    assert html.startswith("<div style='line-height:2'>") and "&lt;b&gt;" in html
