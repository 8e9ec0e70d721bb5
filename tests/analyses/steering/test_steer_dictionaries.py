"""SAE latents and codebook codes as steering-vector sources (issue 24, item 2): the direction,
its scale convention, the refusals (site, width, index) and `workbench steer extract|sweep`
with both sources on the quick zoo's toy-lm (an SAE and a codebook trained in the test)."""

from __future__ import annotations

import json

import pytest
import torch

from analyses.steering import dictionaries
from workbench.cli.main import main
from workbench.errors import InputError

SITE = "blocks.0.hook_resid_post"


@pytest.fixture
def sae_dir(tmp_path):
    from analyses.sae import create_sae, save_sae

    sae = create_sae("relu", d_in=6, d_sae=12)
    with torch.no_grad():
        sae.W_dec.mul_(torch.arange(1, 13).float()[:, None])  # rows of different norms
    return save_sae(sae, tmp_path / "sae", meta={"site": SITE}), sae


@pytest.fixture
def codebook_dir(tmp_path):
    from analyses.codebook.model import Codebooks

    books = Codebooks({SITE: 6, "blocks.1.hook_resid_post": 6}, n_codes=8, k=1)
    return books.save(tmp_path / "cb"), books


def test_sae_latent_is_its_decoder_row_unit_by_default(sae_dir):
    path, sae = sae_dir
    v = dictionaries.from_sae(str(path), 5)
    row = sae.W_dec[5].detach()
    assert torch.allclose(v.vector, row / row.norm()) and v.norm == pytest.approx(1.0)
    assert (v.site, v.method, v.provenance["latent"]) == (SITE, "sae", 5)
    assert v.provenance["raw_norm"] == pytest.approx(float(row.norm()))
    raw = dictionaries.from_sae(str(path), 5, unit=False)
    assert torch.allclose(raw.vector, row) and raw.provenance["norm"] == "raw"
    with pytest.raises(InputError, match=r"latent 12 does not exist: .* has latents 0..11 \(12\)"):
        dictionaries.from_sae(str(path), 12)
    with pytest.raises(InputError, match=f"trained at site '{SITE}', not 'blocks.1.hook_mlp_out'"):
        dictionaries.from_sae(str(path), 0, "blocks.1.hook_mlp_out")


def test_an_sae_trained_from_python_reads_its_site_from_its_source(tmp_path):
    """`train_sae(store, out, site=...)` records the site in meta["source"] (not meta["site"],
    as the CLI does): it is the SAE's site all the same (the demo's SAE is one)."""
    from analyses.sae import create_sae, save_sae

    path = save_sae(create_sae("topk", d_in=6, d_sae=8, k=2), tmp_path / "s",
                    meta={"source": {"source": "store", "site": SITE}})  # fmt: skip
    assert dictionaries.from_sae(str(path), 1).site == SITE


def test_codebook_code_is_its_codebook_vector(codebook_dir):
    path, books = codebook_dir
    v = dictionaries.from_codebook(str(path), 3, SITE)
    row = books.layer(SITE).codebook[3].detach()
    assert torch.allclose(v.vector, row / row.norm())
    assert (v.site, v.method, v.provenance["code"]) == (SITE, "codebook", 3)
    with pytest.raises(InputError, match="has codebooks at blocks.0.hook_resid_post, blocks.1"):
        dictionaries.from_codebook(str(path), 3)  # two sites: which one?
    with pytest.raises(InputError, match=r"code 8 does not exist: .* has codes 0..7 \(8\)"):
        dictionaries.from_codebook(str(path), 8, SITE)
    with pytest.raises(InputError, match="no codebook at site 'blocks.2.hook_resid_post'"):
        dictionaries.from_codebook(str(path), 0, "blocks.2.hook_resid_post")


def test_grouped_codebook_code_fills_its_groups_slice(tmp_path):
    from analyses.codebook.model import Codebooks

    books = Codebooks({SITE: 6}, n_codes=4, k=1, groups=2)
    books.save(tmp_path / "g")
    v = dictionaries.from_codebook(str(tmp_path / "g"), 5, unit=False)  # group 1, dims 3..5
    assert v.provenance["group"] == 1
    assert torch.equal(v.vector[:3], torch.zeros(3))
    assert torch.allclose(v.vector[3:], books.layer(SITE).codebook[5].detach())


# ------------------------------------------------------------ through the CLI, on the zoo
def _cli(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_cli_extract_and_sweep_with_sae_and_codebook_sources(
    quick_zoo, tmp_path, capsys, monkeypatch
):
    """A store of toy-lm, an SAE trained on it (few steps), a codebook trained with few steps;
    `steer extract` writes a vector of each (checked against the model), one `steer sweep`
    runs both (each at its site, with random controls and the report's rule), and a sweep
    takes a code directly. Bad input: a width or index the model or dictionary lacks."""
    from analyses.steering.recipes import grammar_targets

    monkeypatch.setenv("WORKBENCH_ZOO", str(quick_zoo))
    model = ["--model", "toy-lm", "--device", "cpu", "-q"]
    site_b = "blocks.1.hook_resid_post"
    store, sae, cb, vecs = (str(tmp_path / n) for n in ("store", "sae", "cb", "vecs"))
    code, _, err = _cli(capsys, ["capture", *model, "--dataset", "grammar-lm",
                                 "--n-examples", "24", "--sites", SITE, "--out", store])  # fmt: skip
    assert code == 0, err
    code, _, err = _cli(capsys, ["sae", "train", "--store", store, "--site", SITE, "--d-sae",
                                 "32", "--steps", "20", "--out", sae, "--device", "cpu"])  # fmt: skip
    assert code == 0, err
    code, _, err = _cli(capsys, ["codebook", "train", "--model", "toy-lm", "--zoo-root",
                                 str(quick_zoo), "--sites", site_b, "--n-codes", "16", "--steps",
                                 "2", "--n-train", "16", "--n-eval", "8", "--out", cb])  # fmt: skip
    assert code == 0, err

    code, out, err = _cli(capsys, ["steer", "extract", "--from-sae", sae, "--latent", "3",
                                   *model, "--out", vecs])  # fmt: skip
    assert code == 0, err
    assert f"{SITE}.safetensors  norm 1 " in out
    code, out, err = _cli(capsys, ["steer", "extract", "--from-codebook", cb, "--code", "2",
                                   *model, "--out", vecs])  # fmt: skip
    assert code == 0, err
    meta = json.loads((tmp_path / "vecs" / f"{site_b}.json").read_text())
    assert (meta["method"], meta["provenance"]["code"]) == ("codebook", 2)

    target, opposite = grammar_targets("topic", 0)
    sweep = ["steer", "sweep", *model, "--prompt", "the", "--prompt", "we saw a", "--target",
             ",".join(target), "--opposite", ",".join(opposite), "--coeffs", "0,4",
             "--controls", "1", "--max-new-tokens", "2", "--json"]  # fmt: skip
    code, out, err = _cli(capsys, [*sweep, "--vectors", vecs])
    assert code == 0, err
    result = json.loads(out)
    assert set(result["effect_at_max_coeff"]) == {SITE, site_b}
    best = result["best_site"]
    if best is not None:  # the report's rule, unchanged: above the floor and >= 2x control
        effect = result["effect_at_max_coeff"][best]
        assert effect["concept"] > result["effect_floor"]
        assert effect["concept"] >= result["control_ratio"] * abs(effect["control"])
    else:
        assert result["verdict"].startswith("No site moved the concept")
    sources = {v["method"]: v for v in result["settings"]["vectors"]}
    assert sources["sae"]["latent"] == 3 and sources["codebook"]["code"] == 2
    assert sources["sae"]["scale"] > 0  # auto: unit vectors count in the site's typical norm

    code, out, err = _cli(capsys, [*sweep, "--from-codebook", cb, "--code", "5"])
    assert code == 0, err
    assert list(json.loads(out)["effect_at_max_coeff"]) == [site_b]

    # refusals, each naming what is wrong and what would be valid
    code, _, err = _cli(capsys, [*sweep, "--vectors", vecs, "--from-codebook", cb, "--code", "1"])
    assert code != 0 and f"two vectors at site '{site_b}'" in err
    code, _, err = _cli(capsys, ["steer", "extract", "--from-codebook", cb, "--code", "16",
                                 *model, "--out", vecs])  # fmt: skip
    assert code != 0 and "code 16 does not exist" in err and "codes 0..15 (16)" in err
    code, _, err = _cli(capsys, ["steer", "extract", "--from-sae", sae, "--latent", "32",
                                 *model, "--out", vecs])  # fmt: skip
    assert code != 0 and "has latents 0..31 (32)" in err
    from analyses.sae import create_sae, save_sae

    narrow = save_sae(create_sae("topk", d_in=6, d_sae=12, k=2), tmp_path / "n", {"site": SITE})
    code, _, err = _cli(capsys, ["steer", "extract", "--from-sae", str(narrow), "--latent", "0",
                                 *model, "--out", vecs])  # fmt: skip
    assert code != 0 and "reads width 6" in err and "gives width" in err and SITE in err
