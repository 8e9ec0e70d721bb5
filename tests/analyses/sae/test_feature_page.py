"""One latent's static HTML page, from an identity SAE whose latent j fires exactly when x_j > 0
(so density, top context and label agreement are known): content, escaping, offline; and
`workbench sae features --html` / `workbench sae feature-page` writing it."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from conftest import write_store

from analyses.sae import identity_sae, save_sae
from analyses.sae.feature_page import feature_page
from analyses.sae.features import feature_stats, latent_report
from workbench.cli.main import main

SITE = "blocks.0.hook_resid_post"


@pytest.fixture
def labelled(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 4)).astype(np.float32)
    tag = (x[:, 0] > 0).astype(np.int64)  # latent 0 fires exactly on tag = 1
    return write_store(tmp_path / "store", x, {"tag": tag}), x


def test_page_content_against_ground_truth(labelled):
    store, x = labelled
    sae = identity_sae(4)
    stats = feature_stats(sae, store, SITE)
    report = latent_report(sae, store, SITE, 0, stats, w_u=torch.randn(4, 9), n_top=3)
    page = feature_page(report, sae="sae/identity", store="stores/s", site=SITE)
    assert "<h1>Latent 0</h1>" in page and "<title>Latent 0</title>" in page
    assert f"site <code>{SITE}</code>" in page and "SAE <code>sae/identity</code>" in page
    assert f"density {(x[:, 0] > 0).mean():.4%}" in page
    assert f"max activation {x[:, 0].max():.3f}" in page
    # the top context is the row of the largest x_0, its own token shaded fully
    top = int(np.argmax(x[:, 0]))
    assert f"example {top // 8}, position {top % 8}: {x[top, 0]:.3f}" in page
    assert "rgba(255,140,0,1.00);border-bottom" in page
    assert page.count("<rect") == len(report["histogram"][0])  # the histogram's bars
    assert page.count("<h3>activation ") == len(report["quantile_contexts"])
    assert "Output tokens (W_dec @ W_U)" in page
    # label agreement: tag=1 at precision and recall 1 (and first, by precision)
    rows = re.findall(r"<tr><td>(tag=\d)</td><td>([\d.]+)</td><td>([\d.]+)</td>", page)
    assert rows[0] == ("tag=1", "1.000", "1.000") and len(rows) == 2
    # offline: no script, no link, no external resource
    assert "<script" not in page and "<link" not in page and "src=" not in page


def test_tokens_and_names_are_escaped(labelled):
    store, _ = labelled
    sae = identity_sae(4)
    report = latent_report(sae, store, SITE, 1, n_top=2)
    report["top_contexts"][0]["tokens"][0] = "<script>alert(1)</script>"
    report["output_tokens"] = {"top": [("<b>", 1.0)], "bottom": [("&amp", -1.0)]}
    page = feature_page(report, site="<img src=x>", title='Latent "1" <i>')
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x&gt;" in page and "&lt;b&gt;" in page and "&amp;amp" in page
    assert "<h1>Latent &quot;1&quot; &lt;i&gt;</h1>" in page


def test_page_of_a_latent_that_never_fires(labelled):
    store, _ = labelled
    sae = identity_sae(4)
    with torch.no_grad():
        sae.b_enc[2] = -100.0  # latent 2 never fires
    page = feature_page(latent_report(sae, store, SITE, 2))
    assert "density 0.0000%" in page and "This latent never fires" in page


def test_cli_features_html_and_feature_page(labelled, tmp_path, capsys):
    store, x = labelled
    sae_dir = save_sae(identity_sae(4), tmp_path / "sae", {"site": SITE})
    report_dir = tmp_path / "features"
    argv = ["sae", "features", "--sae", str(sae_dir), "--store", str(store.path)]
    assert main([*argv, "--out", str(report_dir), "--html", "0", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["html"]
    assert written == [str(report_dir / "html" / "latent_0.html")]
    assert "<h1>Latent 0</h1>" in (report_dir / "html" / "latent_0.html").read_text()

    out = tmp_path / "pages" / "latent 4.html"
    argv = ["sae", "feature-page", "--report", str(report_dir), "--latent", "4"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["out"] == str(out) and got["bytes"] == out.stat().st_size
    page = out.read_text()
    assert "<h1>Latent 4</h1>" in page and f"site <code>{SITE}</code>" in page
    assert f"density {(x[:, 0] < 0).mean():.4%}" in page  # latent 4 is relu(-x_0)
    assert re.search(r"<tr><td>tag=0</td><td>1.000</td><td>1.000</td>", page)

    argv = ["sae", "feature-page", "--report", str(report_dir), "--latent", "8"]
    assert main([*argv, "--out", str(tmp_path / "no.html")]) == 2
    assert "latent 8 out of range [0, 8)" in capsys.readouterr().err
    assert not (tmp_path / "no.html").exists()
