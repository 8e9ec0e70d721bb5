"""CUDA: the real thing where a GPU is present (tests marked `cuda`, skipped without one by
tests/conftest.py), and the CPU self-check of `benchmarks/gpu_check.py` so that the GPU check's
code cannot rot on machines without a GPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SITES = "blocks.*.hook_resid_post"
TEXTS = ["the cat sat on the mat", "a dog ran over the log and the big red tree", "bird"]


def gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------- on a CUDA device
@pytest.mark.cuda
def test_capture_cuda_bf16_matches_cpu_fp32(neox_dir):
    from workbench import load_model
    from workbench.hooks.capture import capture

    gpu_check = gpu_check_module()
    cpu = capture(load_model(neox_dir, device="cpu"), SITES, TEXTS, dtype=None)
    gpu_handle = load_model(neox_dir, device="cuda", dtype="auto")
    assert gpu_handle.dtype == torch.bfloat16  # --dtype auto on CUDA
    gpu = capture(gpu_handle, SITES, TEXTS, dtype=None)
    assert all(gpu[s].device.type == "cuda" for s in gpu.sites)
    assert np.isfinite(gpu.numpy(cpu.sites[0])).all()  # bf16 on CUDA -> numpy works
    assert torch.equal(gpu.token_ids.cpu(), cpu.token_ids)
    ref = {s: cpu[s].float() for s in cpu.sites}
    got = {s: gpu[s].float().cpu() for s in gpu.sites}
    assert gpu_check.max_row_error(got, ref) <= gpu_check.CAPTURE_BF16_TOL


@pytest.mark.cuda
def test_steered_generation_kv_cache_identical_on_cuda(neox_dir):
    from analyses.steering.apply import generate
    from analyses.steering.vectors import SteeringVector
    from workbench import load_model

    torch.backends.cuda.matmul.allow_tf32 = False
    handle = load_model(neox_dir, device="cuda", dtype="float32")
    vector = SteeringVector(torch.randn(64), "blocks.1.hook_resid_post", "test")
    for where in ("after", "all", "front"):
        _, cached = generate(handle, TEXTS, vector, 4.0, where=where, max_new_tokens=6)
        _, plain = generate(
            handle, TEXTS, vector, 4.0, where=where, max_new_tokens=6, use_cache=False
        )
        assert cached.device.type == "cuda"
        assert torch.equal(cached, plain), where


@pytest.mark.cuda
def test_sae_training_runs_on_cuda(tmp_path):
    """The trainer trains an SAE where the SAE is (here, moved to CUDA before training)."""
    from analyses.sae.evaluate import evaluate
    from analyses.sae.registry import create_sae
    from analyses.sae.trainer import TrainConfig, train

    rows = np.random.default_rng(0).normal(size=(2048, 32)).astype(np.float32)
    sae = create_sae("topk", d_in=32, d_sae=128, k=8).to("cuda")
    result = train(sae, rows, tmp_path / "sae", TrainConfig(batch_size=256, n_steps=20))
    assert result["done"] and result["tokens"] == 20 * 256
    assert all(p.device.type == "cuda" for p in sae.parameters())
    assert np.isfinite(evaluate(sae, rows)["explained_variance"])


@pytest.mark.cuda
def test_cpu_sae_spliced_into_cuda_model(neox_dir):
    from analyses.sae.registry import create_sae
    from workbench import load_model
    from workbench.hooks.intervene import Splice, intervene

    handle = load_model(neox_dir, device="cuda", dtype="auto")
    sae = create_sae("topk", d_in=64, d_sae=128, k=8)  # on the CPU, fp32
    with intervene(handle, Splice("blocks.1.hook_resid_post", sae)):
        out = handle.run(handle.prepare(TEXTS))
    assert out.device.type == "cuda" and bool(torch.isfinite(out.float()).all())


@pytest.mark.cuda
def test_codebooks_follow_a_cuda_model(neox_dir):
    from analyses.codebook.model import Codebooks
    from workbench import load_model

    handle = load_model(neox_dir, device="cuda", dtype="float32")
    books = Codebooks.for_handle(handle, "blocks.1.hook_resid_post", n_codes=16, k=2)
    assert books.layers[0].codebook.device.type == "cuda"
    with books.insert(handle):
        handle.run(handle.prepare(TEXTS))
    assert books.last_ids()["blocks.1.hook_resid_post"].device.type == "cuda"


@pytest.mark.cuda
def test_neural_collapse_on_cuda_matches_cpu():
    from analyses.neural_collapse.analyses import collapse

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 3000)
    x = (rng.normal(size=(3000, 32)) + 4 * np.eye(5, 32)[y]).astype(np.float32)
    batches = [x[i : i + 700] for i in range(0, 3000, 700)]
    assert collapse(batches, y, device="cuda")["nc1"] == pytest.approx(
        collapse(batches, y)["nc1"], rel=1e-9
    )


# ------------------------------------------------------------- the GPU check's own code
@pytest.mark.slow
def test_gpu_check_cpu_self_check_runs(capsys):
    """`gpu_check.py --device cpu --quick`: every measurement of the GPU check, on the CPU with
    a tiny model (the table says it is a self-check, not the GPU check)."""
    gpu_check = gpu_check_module()
    assert gpu_check.main(["--device", "cpu", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "SELF-CHECK" in out and "not the GPU check" in out
    for row in ("capture fp32", "capture bf16", "steered generation fp32", "SAE trainer",
                "SAE step alone", "SAELens", "neural collapse"):  # fmt: skip
        assert any(line.startswith(f"| {row}") for line in out.splitlines()), row
    assert "**NO**" not in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_gpu_check_without_cuda_says_so(capsys):
    gpu_check = gpu_check_module()
    assert gpu_check.main([]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "no CUDA device: gpu-check needs one; nothing was run"
    assert captured.out == ""
