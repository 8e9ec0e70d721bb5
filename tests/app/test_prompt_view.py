"""`workbench_app.lib.prompt_view` (the Prompt page's pure view functions) and
`links.unit_link` on a planted `PromptUnits`: colours by the strongest unit, escaping, links to
each unit's page, a token's detail table."""

from __future__ import annotations

import numpy as np
import torch

from workbench.analysis.prompt import PromptTokens, PromptUnits
from workbench_app.lib import prompt_view
from workbench_app.lib.links import unit_link


def _view() -> PromptUnits:
    tokens = PromptTokens("x", torch.zeros(1, 3), ["<bos>", "<b>cat</b>", "sat"], special=[0])
    acts = np.array([[9.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    view = PromptUnits(tokens, acts, "latent", scale=np.array([9.0, 4.0, 1.0]))
    view.labels = {1: {"label": "topic=2", "precision": 0.75, "recall": 0.5}}
    view.links = {j: {"page": "SAE_features", "features": "sae/a b/features", "latent": j}
                  for j in range(3)}  # fmt: skip
    return view


def test_tokens_coloured_by_their_strongest_unit_and_escaped():
    view = _view()
    units = view.top_units()
    assert units == [2, 1]  # 1/1 of latent 2's max beats 2/4 of latent 1's; the BOS not ranked
    html = prompt_view.tokens_html(view, units, selected=1)
    assert "&lt;b&gt;cat&lt;/b&gt;" in html and "<b>cat" not in html
    spans = html.split("<span")[1:]
    colour = prompt_view.colours(units)[1]  # token 1's strongest: latent 1 (2.0 > 1.0)
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    assert f"rgba({r},{g},{b},0.60)" in spans[1]  # 0.2 + 0.8 * 2 / 4
    assert "border-bottom" in spans[1] and "border-bottom" not in spans[0]
    assert "background" not in spans[2] and "no latent fires" in spans[2]
    assert "latent 1 (topic=2, precision 0.75)" in prompt_view.legend_html(view, units)
    assert "special tokens ('&lt;bos&gt;')" not in prompt_view.ranking_note(view)
    assert "'<bos>'" in prompt_view.ranking_note(view)


def test_table_links_and_detail():
    view = _view()
    frame = prompt_view.units_frame(view, view.top_units())
    assert list(frame.columns[:3]) == ["latent", "page", "score"]
    assert frame.page.tolist() == [
        "SAE_features?features=sae/a%20b/features&latent=2",
        "SAE_features?features=sae/a%20b/features&latent=1",
    ]
    assert unit_link({"page": "Codebooks", "model": "codebooks/x", "site": "s", "code": 4}) == (
        "Codebooks?model=codebooks/x&site=s&code=4"
    )
    detail = {"position": 1, "token": "cat", "units": [
        {"latent": 1, "act": 2.0, "up": [("dog", 1.5)], "down": [("mat", -0.5)]},
        {"latent": 2, "act": 1.0},
    ]}  # fmt: skip
    table = prompt_view.detail_frame(detail, view)
    assert table.to_dict("records")[0] == {
        "latent": 1, "activation": 2.0, "best label": "topic=2", "precision": 0.75,
        "pushes up": "dog +1.50", "pushes down": "mat -0.50",
    }  # fmt: skip
    assert table.loc[1, "pushes up"] == "" and table["best label"].isna()[1]
