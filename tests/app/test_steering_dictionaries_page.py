"""The Steering page (AppTest) offers saved SAEs and codebook models as directions (issue 24,
item 2): an SAE latent's and a codebook code's generations run at the dictionary's site, scaled to
the site's typical norm; an SAE of another width and a latent out of range are refused with the
reason on the page, which stays usable."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench import zoo
from workbench_app.lib import steering_view

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "pages" / "9_Steering.py")
SITE = "blocks.1.hook_resid_pre"


@pytest.fixture
def dictionaries(runs_dir, quick_zoo):
    from analyses.codebook.model import Codebooks
    from analyses.sae import create_sae, save_sae
    from analyses.steering.dictionaries import site_width

    series = zoo.load_series("toy-lm", quick_zoo)
    handle = series.load(series.steps[-1], device="cpu")
    width = site_width(handle, SITE)
    save_sae(
        create_sae("topk", d_in=width, d_sae=16, k=2), runs_dir / "sae" / "toy", {"site": SITE}
    )
    save_sae(create_sae("topk", d_in=6, d_sae=8, k=2), runs_dir / "sae" / "narrow", {"site": SITE})
    Codebooks.for_handle(handle, SITE, n_codes=8, k=1).save(runs_dir / "codebooks" / "toy")
    return runs_dir


def test_view_lists_dictionaries_and_names_their_sources(dictionaries):
    saes, books = steering_view.saved_dictionaries(dictionaries)
    assert (saes, books) == (["sae/narrow", "sae/toy"], ["codebooks/toy"])
    offered = steering_view.directions([], saes, books)
    assert "SAE latent: sae/toy" in offered and "codebook code: codebooks/toy" in offered
    assert steering_view.dictionary_source("codebook code: codebooks/toy") == (
        "codebook",
        "codebooks/toy",
    )
    assert steering_view.dictionary_source("positive sentiment") is None
    params = {"vectors": [{"method": "sae", "latent": 3, "site": SITE, "scale": 70.0}]}
    assert steering_view.sweep_sources(params) == (
        f"Swept: SAE latent 3 at {SITE}, coefficient x 70 (site's typical norm)."
    )
    assert steering_view.sweep_sources({}) is None


def test_page_steers_with_a_latent_and_a_code(monkeypatch, dictionaries, quick_zoo):
    monkeypatch.setenv(zoo.ZOO_ENV, str(quick_zoo))
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.query_params.update(prompts="the dog", direction="SAE latent: sae/toy", index="3")
    at.run()
    assert not at.exception
    assert [m.value for m in at.subheader][0] == f"Generations at {SITE}, coefficient 6"
    assert any(f"SAE latent 3 at {SITE}: a unit direction" in c.value for c in at.caption)
    direction = next(s for s in at.selectbox if s.label == "Direction")
    direction.set_value("codebook code: codebooks/toy").run()
    assert not at.exception
    assert any(f"Codebook code 3 at {SITE}" in c.value for c in at.caption)
    direction.set_value("SAE latent: sae/narrow").run()
    assert not at.exception
    assert any("reads width 6" in e.value and "gives width" in e.value for e in at.error)
    direction.set_value("SAE latent: sae/toy").run()
    next(n for n in at.number_input if n.label == "SAE latent").set_value(16).run()
    assert not at.exception
    assert any("latent 16 does not exist" in e.value and "0..15" in e.value for e in at.error)


def test_the_page_offers_only_dictionaries_of_its_model(tmp_path):
    """A codebook of fsm-lm is not offered to steer toy-lm; one of toy-lm, and one that does not
    name its model (a SAELens upload without `model_name`), are."""
    import json

    for folder, config in (
        ("codebooks/fsm", {"base": "fsm-lm@1500"}),
        ("codebooks/toy", {"base": "toy-lm@1000"}),
        ("sae/toy", {"meta": {"source": {"spec": {"model": "toy-lm@1000"}}}}),
        ("sae/upload", {}),
    ):
        path = tmp_path / folder
        path.mkdir(parents=True)
        name = "codebook.json" if folder.startswith("codebooks") else "config.json"
        (path / name).write_text(json.dumps(config))
        if name == "config.json":
            (path / "sae.safetensors").write_bytes(b"")
    assert steering_view.saved_dictionaries(tmp_path, model="toy-lm") == (
        ["sae/toy", "sae/upload"],
        ["codebooks/toy"],
    )
    assert steering_view.saved_dictionaries(tmp_path)[1] == ["codebooks/fsm", "codebooks/toy"]
