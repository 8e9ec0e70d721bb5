"""Devices and dtypes without a GPU: a CUDA request is a clean one-line error in every verb with
`--device`; float16 compute on the CPU is refused; half-precision activations reach numpy math
as float32; fp32 modules, vectors and SAEs work on a bf16 model (the CUDA default dtype)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.cli.main import main
from workbench.devices import resolve_device, resolve_dtype
from workbench.errors import InputError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")

DEVICE_VERBS = {
    "sites": ["sites", "minilm"],
    "capture": ["capture", "--model", "minilm", "--sites", "blocks.0.hook_resid_post",
                "--text", "a cat", "--out", "{tmp}/store"],
    "steer extract": ["steer", "extract", "--model", "minilm", "--site", "blocks.0.hook_resid_post",
                      "--positive", "good", "--negative", "bad", "--out", "{tmp}/vectors"],
    "steer apply": ["steer", "apply", "--model", "minilm", "--vector", "{tmp}/v.safetensors",
                    "--prompt", "hi"],
    "steer sweep": ["steer", "sweep", "--model", "minilm", "--vector", "{tmp}/v.safetensors"],
    "landscape-dim": ["landscape-dim", "--model", "digits-mlp", "--dims", "10"],
    "demo": ["demo", "--out", "{tmp}/demo", "--no-app"],
    "sae train": ["sae", "train", "--acts", "{tmp}/acts.npy", "--out", "{tmp}/sae"],
}  # fmt: skip


@no_cuda
@pytest.mark.parametrize("verb", sorted(DEVICE_VERBS))
def test_cuda_request_without_cuda_is_one_clean_line(verb, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ZOO", str(tmp_path / "zoo"))  # nothing may be built there
    argv = [a.replace("{tmp}", str(tmp_path)) for a in DEVICE_VERBS[verb]]
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "'cuda' was asked for but CUDA is not available" in err[0]
    assert "'auto' or 'cpu'" in err[0]
    assert not (tmp_path / "zoo").exists() and not (tmp_path / "store").exists()


@no_cuda
def test_resolve_device():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(InputError, match="'cuda:1' was asked for"):
        resolve_device("cuda:1")
    with pytest.raises(InputError, match="unknown device 'gpu'.*'cuda:N'"):
        resolve_device("gpu")


def test_float16_compute_on_cpu_is_refused_with_the_choices():
    cpu = torch.device("cpu")
    for name in ("float16", "fp16", torch.float16):
        with pytest.raises(InputError, match="float16.*'float32'.*'bfloat16'.*--device cuda"):
            resolve_dtype(name, cpu)
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_dtype("auto", cpu) == torch.float32
    # a store's on-disk dtype (no device) and float16 on CUDA stay allowed
    assert resolve_dtype("float16") == torch.float16
    assert resolve_dtype("float16", torch.device("cuda")) == torch.float16


def test_float16_model_on_cpu_cli_error(capsys):
    argv = ["sites", "minilm", "--device", "cpu", "--dtype", "float16"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dtype 'float16' on the CPU" in err[0], err


def test_half_precision_rows_reach_analyses_as_float32():
    """float16 sums overflow at 65504: an analysis fed a float16 array must compute in float32."""
    from analyses.neural_collapse.analyses import Params, run
    from workbench.analysis.sources import Source

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 200)
    x = (rng.normal(size=(600, 8)) * 5 + 300 * np.eye(3, 8)[y]).astype(np.float16)
    source = Source(acts=x, labels=y)
    assert source.matrix().dtype == np.float32
    assert all(batch.dtype == np.float32 for batch in source.iter_rows(128))
    half = run(source, Params(batch_size=128)).headline
    full = run(Source(acts=x.astype(np.float32), labels=y), Params(batch_size=128)).headline
    assert np.isfinite(half["nc1"]) and half["nc1"] == pytest.approx(full["nc1"])


def test_half_precision_store_reads_as_float32(neox, tmp_path):
    from workbench.analysis.sources import Source
    from workbench.store import ActivationStore
    from workbench.store.capture import capture_to_store

    site = "blocks.1.hook_resid_post"
    for dtype in ("float16", "bfloat16"):
        capture_to_store(
            neox, site, ["the cat sat on the mat", "a dog ran"], tmp_path / dtype,
            store_dtype=dtype, progress=False,
        )  # fmt: skip
        store = ActivationStore(tmp_path / dtype)
        assert store.site_info(site)["dtype"] == dtype
        rows = next(Source.from_store(store, site).iter_rows(64))
        assert rows.dtype == np.float32 and np.isfinite(rows).all()


@pytest.fixture(scope="module")
def neox_bf16(neox_dir):
    from workbench import load_model

    return load_model(neox_dir, device="cpu", dtype="bfloat16")


def test_fp32_sae_spliced_into_bf16_model(neox_bf16):
    """`Splice` hands the site's bf16 output to an fp32 module and returns bf16 (on CUDA the
    default model dtype is bf16 while SAEs and codebooks train in fp32)."""
    from analyses.sae.registry import create_sae
    from workbench.hooks.intervene import Splice, intervene

    site = "blocks.1.hook_resid_post"
    sae = create_sae("topk", d_in=64, d_sae=128, k=8)
    seen = {}

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sae = sae

        def forward(self, x):
            seen["dtype"] = x.dtype
            return self.sae(x)

    with intervene(neox_bf16, Splice(site, Spy())):
        out = neox_bf16.run(neox_bf16.prepare(["the cat sat"]))
    assert seen["dtype"] == torch.float32
    assert out.dtype == torch.bfloat16 and bool(torch.isfinite(out.float()).all())


def test_codebook_on_bf16_model(neox_bf16):
    from analyses.codebook.model import Codebooks

    books = Codebooks.for_handle(neox_bf16, "blocks.1.hook_resid_post", n_codes=16, k=2)
    assert books.layers[0].codebook.dtype == torch.float32
    with books.insert(neox_bf16):
        out = neox_bf16.run(neox_bf16.prepare(["the cat sat", "a dog"]))
    assert out.dtype == torch.bfloat16
    assert books.last_ids()["blocks.1.hook_resid_post"].shape[-1] == 2


def test_steering_fp32_vector_on_bf16_model(neox_bf16):
    from analyses.steering.apply import generate
    from analyses.steering.vectors import SteeringVector

    vector = SteeringVector(torch.randn(64), "blocks.1.hook_resid_post", "test")
    _, cached = generate(neox_bf16, ["the cat"], vector, 4.0, max_new_tokens=4)
    _, plain = generate(neox_bf16, ["the cat"], vector, 4.0, max_new_tokens=4, use_cache=False)
    assert cached.shape == plain.shape == (1, cached.shape[1])


def test_bf16_sae_reads_fp32_rows():
    """SAE evaluation and feature statistics hand float32 store rows to the SAE in its own
    dtype and device, and bring the latents back to numpy as float32."""
    from analyses.sae.evaluate import evaluate
    from analyses.sae.features import feature_stats, latent_values
    from analyses.sae.registry import create_sae

    rows = np.random.default_rng(0).normal(size=(256, 16)).astype(np.float32)
    sae = create_sae("topk", d_in=16, d_sae=32, k=4).to(torch.bfloat16)
    values = latent_values(sae, rows, latent=3, batch_size=100)
    assert values.dtype == np.float32 and values.shape == (256,)
    assert np.isfinite(evaluate(sae, rows, batch_size=100)["explained_variance"])
    stats = feature_stats(sae, rows, batch_size=100)
    assert stats.density.shape == (32,)


def test_neural_collapse_scatter_on_a_torch_device_matches_numpy():
    """The torch accumulation path of `ClassScatter` (used with device="cuda") gives numpy's
    sums; run here with device="cpu"."""
    from analyses.neural_collapse.analyses import collapse

    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 900)
    x = (rng.normal(size=(900, 12)) + 3 * np.eye(4, 12)[y]).astype(np.float32)
    w = np.eye(4, 13)
    batches = [x[i : i + 250] for i in range(0, 900, 250)]
    numpy_path = collapse(batches, y, w)
    torch_path = collapse(batches, y, w, device="cpu")
    for key in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc3", "nc4"):
        assert torch_path[key] == pytest.approx(numpy_path[key], rel=1e-10), key
