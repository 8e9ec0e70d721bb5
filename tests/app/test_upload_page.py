"""The Upload page through streamlit's AppTest (its file_uploader takes bytes): each kind is
imported through the page's forms, lands where the pages that read it look, and a refused file
shows its error. The parsing rules themselves are tested in tests/workbench/test_uploads.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from app_browser import browser_page, full_page_screenshot, needs_chromium, serve, shots_dir
from streamlit.testing.v1 import AppTest

from analyses.sae import create_sae, load_sae, save_sae
from analyses.steering import SteeringVector
from workbench.store import ActivationStore
from workbench.zoo import ZOO_ENV

PAGES = Path(__file__).resolve().parents[2] / "app" / "pages"
PAGE = str(PAGES / "14_Upload.py")


@pytest.fixture
def no_zoo(tmp_path, monkeypatch):
    """An empty zoo: the vector section offers no model, so nothing loads one."""
    monkeypatch.setenv(ZOO_ENV, str(tmp_path / "zoo"))


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def no_exception(at: AppTest) -> None:
    assert not at.exception, "\n".join(e.value for e in at.exception)


def submit(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    return at.run()


def links(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_the_page_shows_three_uploaders_and_their_limits(runs_dir, no_zoo):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    no_exception(at)
    assert at.title[0].value == "Upload"
    assert [s.value for s in at.subheader] == [
        "Activations",
        "Steering vector",
        "Sparse autoencoder",
    ]
    uploaders = at.file_uploader
    assert len(uploaders) == 3
    assert "512 MiB" in uploaders[0].label and "16 MiB" in uploaders[1].label
    assert "512 MiB" in uploaders[2].label and uploaders[2].accept_multiple_files
    assert uploaders[0].allowed_type == [".npy", ".safetensors", ".csv", ".parquet"]
    assert not at.error and not at.success


def test_uploaded_activations_list_in_explore_and_geometry(runs_dir, no_zoo):
    acts = np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.file_uploader[0].upload("mine.npy", npy_bytes(acts))
    at.text_input[1].input("blocks.1.hook_resid_post")  # the site
    submit(at, "Import activations")
    no_exception(at)
    assert not at.error, at.error[0].value
    assert "`stores/uploads/mine`: 120 rows" in at.success[0].value
    assert "Explore?store=stores/uploads/mine" in links(at)
    store = ActivationStore(runs_dir / "stores/uploads/mine")
    np.testing.assert_array_equal(store.read("blocks.1.hook_resid_post"), acts)

    for page in ("12_Explore.py", "2_Geometry.py"):
        view = AppTest.from_file(str(PAGES / page), default_timeout=120)
        view.query_params.update({"store": "stores/uploads/mine", "sel": "0-9"})
        view.run()
        no_exception(view)
        store_box = next(s for s in view.selectbox if s.label == "Store")
        assert store_box.value == "stores/uploads/mine"
        assert not view.error, view.error[0].value
        if page == "12_Explore.py":  # a selection works on rows without tokens too
            assert view.subheader[0].value == "Selection: 10 of 120 mapped rows"
        else:
            assert {m.label: m.value for m in view.metric}["rows"] == "120"

    submit(at, "Import activations")  # the same file again: the name is taken
    assert "already exists" in at.error[0].value


def test_a_pickled_npy_shows_an_error_and_writes_nothing(runs_dir, no_zoo):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    data = npy_bytes(np.array([{"a": 1}], dtype=object), allow_pickle=True)
    at.file_uploader[0].upload("evil.npy", data)
    submit(at, "Import activations")
    no_exception(at)
    assert "pickled (object) arrays are never loaded" in at.error[0].value
    assert not (runs_dir / "stores").exists() or not any((runs_dir / "stores/uploads").iterdir())


def test_a_vector_is_saved_where_the_steering_page_finds_it(runs_dir, no_zoo):
    vector = np.arange(1, 9, dtype=np.float32)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert at.selectbox[0].options == ["(no model: only 1-D and finite)"]
    at.file_uploader[1].upload("dir.npy", npy_bytes(vector))
    at.text_input[4].input("blocks.0.hook_resid_pre")  # the site
    submit(at, "Import vector")
    no_exception(at)
    assert "`vectors/uploads/dir.safetensors` for site `blocks.0.hook_resid_pre` (width 8)" in (
        at.success[0].value
    )
    assert "Steering?direction=saved%3A%20vectors/uploads/dir.safetensors" in links(at)
    saved = SteeringVector.load(runs_dir / "vectors/uploads/dir.safetensors")
    np.testing.assert_array_equal(saved.vector.numpy(), vector)
    assert saved.site == "blocks.0.hook_resid_pre"


def test_an_sae_uploaded_as_two_files_loads(runs_dir, tmp_path, no_zoo):
    torch.manual_seed(0)
    sae = create_sae("relu", d_in=6, d_sae=12)
    folder = save_sae(sae, tmp_path / "sae", meta={"site": "blocks.0.hook_resid_post"})
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.file_uploader[2].set_value(
        [(p.name, p.read_bytes(), "application/octet-stream") for p in sorted(folder.iterdir())]
    )
    at.text_input[-1].input("relu6")
    submit(at, "Import SAE")
    no_exception(at)
    assert "workbench relu SAE as `sae/uploads/relu6` (d_in 6, d_sae 12)" in at.success[0].value
    loaded, meta = load_sae(runs_dir / "sae/uploads/relu6")
    torch.testing.assert_close(loaded.W_enc, sae.W_enc, rtol=0, atol=0)
    assert meta["site"] == "blocks.0.hook_resid_post"
    record = json.loads((runs_dir / "sae/uploads/relu6/upload.json").read_text())
    assert record["format"] == "workbench"


@pytest.mark.slow  # builds the quick zoo (shared by the session's other zoo tests)
def test_a_vector_is_checked_against_the_zoo_models_site_widths(runs_dir, quick_zoo, monkeypatch):
    monkeypatch.setenv(ZOO_ENV, str(quick_zoo))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert at.selectbox[0].value == "toy-lm"
    at.file_uploader[1].upload("short.npy", npy_bytes(np.ones(5, np.float32)))
    submit(at, "Import vector")
    no_exception(at)
    from workbench.zoo import load_series

    series = load_series("toy-lm", quick_zoo)
    width = series.load(series.steps[-1], device="cpu").model.cfg.d_model
    assert f"'short.npy' has width 5, but site 'blocks.2.hook_resid_pre' has width {width}" in (
        at.error[0].value
    )
    at.file_uploader[1].set_value(("right.npy", npy_bytes(np.ones(width, np.float32)), "x"))
    at.text_input[3].input("right")
    submit(at, "Import vector")
    assert f"(width {width})" in at.success[0].value


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_upload_in_the_browser_then_open_it_in_explore(tmp_path, monkeypatch):
    """The real path: `workbench app` (its streamlit command line included), a file sent over
    HTTP by the browser's file input, the import, then the link to the Explore page."""
    monkeypatch.setenv(ZOO_ENV, str(tmp_path / "zoo"))  # inherited by the server
    runs = tmp_path / "runs"
    runs.mkdir()
    acts = np.random.default_rng(1).normal(size=(200, 5)).astype(np.float32)
    with serve(runs, tmp_path / "server.log") as (url, _port, _pid), browser_page() as page:
        page.goto(f"{url}/Upload")
        page.get_by_text("Import activations").wait_for(timeout=60_000)
        page.locator('input[type="file"]').first.set_input_files(
            files=[
                {
                    "name": "web.npy",
                    "mimeType": "application/octet-stream",
                    "buffer": npy_bytes(acts),
                }
            ]
        )
        page.get_by_text("web.npy").wait_for(timeout=30_000)  # the upload finished
        page.get_by_role("button", name="Import activations").click()
        page.get_by_text("as stores/uploads/web: 200 rows").wait_for(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        link = page.get_by_test_id("stMainBlockContainer").get_by_role("link", name="Explore")
        assert link.get_attribute("href") == "Explore?store=stores/uploads/web"
        full_page_screenshot(page, shots_dir(tmp_path) / "page-upload.png")
        page.goto(f"{url}/Explore?store=stores/uploads/web")  # the link opens a new tab
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1", timeout=120_000
        )
        page.get_by_text("stores/uploads/web: PCA of 200 rows").first.wait_for(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0
    np.testing.assert_array_equal(ActivationStore(runs / "stores/uploads/web").read("acts"), acts)
