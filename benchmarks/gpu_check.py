"""`make gpu-check`: what the workbench does on a CUDA GPU, in one table (at most about 5 minutes
on one GPU, nothing downloaded).

    python benchmarks/gpu_check.py                      # the GPU check (needs CUDA)
    python benchmarks/gpu_check.py --device cpu --quick # a SELF-CHECK of this script on the CPU
                                                        # with a tiny model: not the GPU check

Model: a GPT-NeoX of Pythia-160m's shape (12 layers, d_model 768, 12 heads, d_mlp 3072, rotary
on a quarter of each head, parallel residual) built from a config with random weights
(`workbench.zoo.hf_folder.build_gpt_neox`) over a 4,000-word vocabulary, written to a
temporary folder and loaded like any local model. Rows of the table:

1. capture, CUDA fp32 vs CPU fp32: every `blocks.*.hook_resid_post` at every real token of 16
   texts of 48 words; the largest relative L2 error of one row, ||a - b|| / ||b||. Tolerance
   1e-4: the same fp32 arithmetic in another order (TF32 is switched off for this row) differs
   by ~1e-6; a device bug (a tensor left on the CPU, a wrong mask or position) gives O(1).
2. capture, CUDA bf16 vs CPU fp32: the same, with the model in bf16 (the CUDA default of
   `--dtype auto`). Tolerance 0.05: bf16 keeps 8 significant bits (unit roundoff 2^-8 = 0.4%);
   every weight and every activation is rounded, and over 12 blocks the errors add up: on the
   CPU in bf16 this model's worst row is 1.2% off (median 0.5% after block 0, 1.0% after block
   9; measured 2026-12-07 on the CPU, where bf16 matmuls also accumulate in fp32), so 0.05
   leaves 4x for other kernels while a bug gives O(1).
3. steered generation, KV cache vs none, CUDA fp32 (TF32 off): greedy tokens of 8 prompts x 16
   new tokens under a steering vector (`analyses.steering.generate`, where="after"): must be
   identical. 4. the same in bf16: the fraction of identical tokens, for information (bf16
   logits of cached and uncached attention differ by rounding, so a near-tie may flip).
5. SAE training through `analyses.sae.trainer.train` (TopK, d_in 768, d_sae 6144, k 32, batch
   4096) with the SAE on the device: tokens/s on CUDA and on the CPU.
6. the SAE's training step alone (loss, backward, Adam; no trainer): tokens/s, CUDA vs CPU.
7. SAELens's `SAETrainer` on the same GPU, when `benchmarks/out/venv-saelens` exists (made by
   `benchmarks/bench_sae.py`) and its torch sees CUDA; else the row says why it was skipped.
8. neural-collapse streaming (`analyses.neural_collapse.analyses.collapse`, 262,144 rows x 768,
   10 classes, batches of 16,384): the within-class scatter accumulated on CUDA vs numpy on
   the CPU, seconds, and the relative NC1 difference (tolerance 1e-6, float64 both).

Peak GPU memory is `torch.cuda.max_memory_allocated` over each row's work (reset before it).
Exit status: 0 when every row with a target meets it, 1 when one does not, 2 without CUDA.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SAELENS_PYTHON = HERE / "out" / "venv-saelens" / "bin" / "python"
NO_CUDA = "no CUDA device: gpu-check needs one; nothing was run"

CAPTURE_FP32_TOL = 1e-4
CAPTURE_BF16_TOL = 0.05
NC_TOL = 1e-6


@dataclass(frozen=True)
class Sizes:
    """Model and workload sizes: `FULL` for the GPU check, `QUICK` for the CPU self-check."""

    n_layers: int
    d_model: int
    n_heads: int
    n_texts: int
    words_per_text: int
    new_tokens: int
    sae_d_in: int
    sae_rows: int
    sae_batch: int
    sae_steps: int
    sae_cpu_steps: int
    nc_rows: int
    nc_dim: int


FULL = Sizes(12, 768, 12, 16, 48, 16, 768, 65536, 4096, 60, 8, 262144, 768)
QUICK = Sizes(2, 64, 4, 4, 12, 4, 32, 2048, 256, 8, 8, 4096, 16)
VOCAB = [f"w{i}" for i in range(4000)]


@dataclass
class Row:
    """One line of the table: what was checked, the CPU and device numbers, the target."""

    check: str
    cpu: str
    device: str
    target: str = "info"
    met: bool | None = None
    peak: int | None = None  # bytes of GPU memory, None off CUDA

    def cells(self) -> list[str]:
        met = "" if self.met is None else ("yes" if self.met else "**NO**")
        peak = "" if self.peak is None else f"{self.peak / 2**20:.0f} MiB"
        return [self.check, self.cpu, self.device, self.target, met, peak]


# ------------------------------------------------------------------------------ measurements
def with_peak(device: str, fn: Callable[[], Any]) -> tuple[Any, int | None]:
    """(fn(), peak bytes of CUDA memory allocated while it ran; None off CUDA)."""
    import torch

    if not device.startswith("cuda"):
        return fn(), None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    out = fn()
    torch.cuda.synchronize()
    return out, int(torch.cuda.max_memory_allocated())


def build_model(folder: Path, sizes: Sizes) -> Path:
    """A random-weight GPT-NeoX of `sizes` (Pythia-160m's shape for `FULL`) in `folder`."""
    from workbench.zoo.hf_folder import build_gpt_neox

    return build_gpt_neox(
        folder, VOCAB, n_layers=sizes.n_layers, d_model=sizes.d_model, n_heads=sizes.n_heads,
        n_ctx=256, seed=0,
    )  # fmt: skip


def make_texts(n: int, words: int, seed: int) -> list[str]:
    """`n` texts of 1..`words` random vocabulary words (varied lengths: padding is exercised)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max(1, words // 2), words + 1, n)
    return [" ".join(rng.choice(VOCAB, int(k))) for k in lengths]


def capture_rows(model_dir: Path, device: str, dtype: str, texts: list[str]) -> dict[str, Any]:
    """site -> (rows, d) float32 CPU tensor of every residual-stream site at every real token."""
    from workbench import load_model
    from workbench.hooks.capture import capture

    handle = load_model(model_dir, device=device, dtype=dtype)
    acts = capture(handle, "blocks.*.hook_resid_post", texts, positions="all", dtype=None)
    out = {site: acts[site].float().cpu() for site in acts.sites}
    del handle
    return out


def max_row_error(got: dict[str, Any], reference: dict[str, Any]) -> float:
    """Largest ||got_row - ref_row|| / ||ref_row|| over every site and row."""
    worst = 0.0
    for site, ref in reference.items():
        err = (got[site] - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-30)
        worst = max(worst, float(err.max()))
    return worst


def kv_cache_agreement(model_dir: Path, device: str, dtype: str, sizes: Sizes) -> float:
    """Fraction of generated tokens equal with and without the KV cache under steering."""
    import torch

    from analyses.steering.apply import generate
    from analyses.steering.vectors import SteeringVector
    from workbench import load_model

    handle = load_model(model_dir, device=device, dtype=dtype)
    site = f"blocks.{sizes.n_layers // 2}.hook_resid_post"
    gen = torch.Generator().manual_seed(0)
    vector = SteeringVector(torch.randn(sizes.d_model, generator=gen), site, "gpu-check")
    prompts = make_texts(8, 12, seed=1)
    n = sizes.new_tokens
    _, cached = generate(handle, prompts, vector, 4.0, max_new_tokens=n, use_cache=True)
    _, plain = generate(handle, prompts, vector, 4.0, max_new_tokens=n, use_cache=False)
    new = slice(cached.shape[1] - sizes.new_tokens, None)
    return float((cached[:, new] == plain[:, new]).float().mean())


def sae_rows(sizes: Sizes) -> np.ndarray:
    """(sae_rows, sae_d_in) float32 activations: sparse non-negative mixtures of random
    directions plus noise (the shape of data an SAE is trained on)."""
    rng = np.random.default_rng(0)
    d = sizes.sae_d_in
    dirs = rng.normal(size=(4 * d, d)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    codes = rng.exponential(size=(sizes.sae_rows, 4 * d)).astype(np.float32)
    codes *= rng.random((sizes.sae_rows, 4 * d)) < 8 / (4 * d)
    return codes @ dirs + 0.05 * rng.standard_normal((sizes.sae_rows, d), dtype=np.float32)


def new_sae(sizes: Sizes) -> Any:
    from analyses.sae.registry import create_sae

    d = sizes.sae_d_in
    return create_sae("topk", d_in=d, d_sae=8 * d, k=min(32, d))


def sae_trainer_rate(rows: np.ndarray, device: str, sizes: Sizes, steps: int) -> float:
    """tokens/s of `analyses.sae.trainer.train` with the SAE on `device` (its own clock)."""
    from analyses.sae.trainer import TrainConfig, train

    sae = new_sae(sizes).to(device)
    config = TrainConfig(batch_size=sizes.sae_batch, n_steps=steps, warmup_steps=1, log_every=10**9)
    with tempfile.TemporaryDirectory(prefix="gpu-check-sae-") as out:
        result = train(sae, rows, out, config, resume=False)
    return float(result["tokens_per_s"])


def sae_step_rate(rows: np.ndarray, device: str, sizes: Sizes, steps: int) -> float:
    """tokens/s of the SAE's own training step (loss, backward, Adam) on `device`, batches
    moved from host memory as a trainer would; the first 2 steps are warm-up."""
    import torch

    sae = new_sae(sizes).to(device)
    opt = torch.optim.Adam(sae.parameters(), lr=4e-4)
    host = torch.from_numpy(rows)
    stamps = []
    for step in range(steps + 2):
        lo = (step * sizes.sae_batch) % (len(rows) - sizes.sae_batch + 1)
        x = host[lo : lo + sizes.sae_batch].to(device, non_blocking=True)
        loss = sae.loss(x)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
    return steps * sizes.sae_batch / (stamps[-1] - stamps[1])


SAELENS_CHILD = r"""
import json, sys, time
import numpy as np, torch
from sae_lens.config import SAETrainerConfig, LoggingConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer
a = json.loads(sys.argv[1])
rows = torch.from_numpy(np.load(a["rows"]))
stamps = []
def provider():
    step = 0
    while True:
        lo = (step * a["batch"]) % (len(rows) - a["batch"] + 1)
        stamps.append(time.perf_counter())
        yield rows[lo:lo + a["batch"]].to(a["device"])
        step += 1
d = rows.shape[1]
sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=8 * d, k=min(32, d), dtype="float32",
                                            device=a["device"]))
cfg = SAETrainerConfig(total_training_samples=a["steps"] * a["batch"],
    train_batch_size_samples=a["batch"], lr=4e-4, lr_end=4e-5, lr_warm_up_steps=1,
    device=a["device"], dead_feature_window=10, logger=LoggingConfig(log_to_wandb=False))
SAETrainer(cfg, sae, provider()).fit()
torch.cuda.synchronize()
end = time.perf_counter()
print("RESULT " + json.dumps({"tokens_per_s": (a["steps"] - 2) * a["batch"] / (end - stamps[2]),
                              "peak": torch.cuda.max_memory_allocated()}))
"""


def saelens_rate(rows: np.ndarray, device: str, sizes: Sizes) -> tuple[float, int] | str:
    """(tokens/s, peak bytes) of SAELens's trainer on `device`, or why it was not run."""
    if not device.startswith("cuda"):
        return "skipped: compared on CUDA only"
    if not SAELENS_PYTHON.exists():
        return "skipped: no benchmarks/out/venv-saelens (bench_sae.py makes it)"
    probe = [str(SAELENS_PYTHON), "-c", "import sae_lens, torch; assert torch.cuda.is_available()"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        return "skipped: the SAELens venv has no CUDA torch or no sae_lens"
    with tempfile.TemporaryDirectory(prefix="gpu-check-saelens-") as tmp:
        path = Path(tmp) / "rows.npy"
        np.save(path, rows)
        payload = {"rows": str(path), "batch": sizes.sae_batch, "steps": sizes.sae_steps,
                   "device": device}  # fmt: skip
        proc = subprocess.run(
            [str(SAELENS_PYTHON), "-c", SAELENS_CHILD, json.dumps(payload)],
            capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"},
        )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed: {tail[:120]}"
    result = json.loads(lines[-1][7:])
    return float(result["tokens_per_s"]), int(result["peak"])


def nc_streaming(device: str | None, sizes: Sizes) -> tuple[float, float]:
    """(seconds, NC1) of `collapse` over nc_rows x nc_dim features in batches of 16,384 (the
    analysis's default), the scatter accumulated on `device` (None: numpy on the CPU)."""
    from analyses.neural_collapse.analyses import collapse

    rng = np.random.default_rng(2)
    classes = 10
    y = rng.integers(0, classes, sizes.nc_rows)
    means = rng.normal(size=(classes, sizes.nc_dim)).astype(np.float32)
    batch = 16384
    batches = [
        means[y[lo : lo + batch]]
        + rng.standard_normal((len(y[lo : lo + batch]), sizes.nc_dim), dtype=np.float32)
        for lo in range(0, sizes.nc_rows, batch)
    ]
    started = time.perf_counter()
    result = collapse(batches, y, device=device)
    return time.perf_counter() - started, float(result["nc1"])


# ------------------------------------------------------------------------------------ driver
def run_checks(device: str, sizes: Sizes, log: Callable[[str], None]) -> list[Row]:
    """Every row of the table, `device` against the CPU (see the module docstring)."""
    import torch

    cuda = device.startswith("cuda")
    rows: list[Row] = []
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        log("building the model")
        model_dir = build_model(Path(tmp) / "model", sizes)
        texts = make_texts(sizes.n_texts, sizes.words_per_text, seed=0)
        log("capture: CPU fp32 reference")
        reference = capture_rows(model_dir, "cpu", "float32", texts)
        for dtype, tol in (("float32", CAPTURE_FP32_TOL), ("bfloat16", CAPTURE_BF16_TOL)):
            log(f"capture: {device} {dtype}")
            got, peak = with_peak(
                device, functools.partial(capture_rows, model_dir, device, dtype, texts)
            )
            err = max_row_error(got, reference)
            short = "fp32" if dtype == "float32" else "bf16"
            rows.append(Row(f"capture {short} vs CPU fp32: max row rel. error", "reference",
                            f"{err:.2e}", f"<= {tol:g}", err <= tol, peak))  # fmt: skip
        for dtype in ("float32", "bfloat16"):
            log(f"steered generation, KV cache vs none: {device} {dtype}")
            same, peak = with_peak(
                device, functools.partial(kv_cache_agreement, model_dir, device, dtype, sizes)
            )
            short = "fp32" if dtype == "float32" else "bf16"
            exact = dtype == "float32"
            rows.append(Row(f"steered generation {short}: tokens equal cached/uncached", "",
                            f"{same:.3f}", "1.000" if exact else "info",
                            same == 1.0 if exact else None, peak))  # fmt: skip
    data = sae_rows(sizes)
    log("SAE training: trainer on the CPU")
    cpu_rate = sae_trainer_rate(data, "cpu", sizes, sizes.sae_cpu_steps)
    log(f"SAE training: trainer on {device}")
    try:
        rate, peak = with_peak(
            device, lambda: sae_trainer_rate(data, device, sizes, sizes.sae_steps)
        )
        rows.append(Row("SAE trainer tokens/s (TopK, `train`)", f"{cpu_rate:,.0f}",
                        f"{rate:,.0f} ({rate / cpu_rate:.1f}x)", "runs", True, peak))  # fmt: skip
    except Exception as exc:  # noqa: BLE001  a row of the table, not a crash of the check
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        rows.append(Row("SAE trainer tokens/s (TopK, `train`)", f"{cpu_rate:,.0f}",
                        f"failed: {type(exc).__name__}: {first[:90]}", "runs", False))  # fmt: skip
    log("SAE step alone")
    cpu_step = sae_step_rate(data, "cpu", sizes, sizes.sae_cpu_steps)
    step, peak = with_peak(device, lambda: sae_step_rate(data, device, sizes, sizes.sae_steps))
    rows.append(Row("SAE step alone tokens/s (loss+backward+Adam)", f"{cpu_step:,.0f}",
                    f"{step:,.0f} ({step / cpu_step:.1f}x)", "info", None, peak))  # fmt: skip
    log("SAELens on the same device")
    lens = saelens_rate(data, device, sizes)
    if isinstance(lens, str):
        rows.append(Row("SAELens SAETrainer tokens/s", "", lens))
    else:
        rows.append(Row("SAELens SAETrainer tokens/s", "", f"{lens[0]:,.0f} (ours step alone / "
                        f"SAELens: {step / lens[0]:.2f})", "info", None, lens[1]))  # fmt: skip
    log("neural-collapse streaming")
    cpu_s, cpu_nc1 = nc_streaming(None, sizes)
    (dev_s, dev_nc1), peak = with_peak(device, lambda: nc_streaming(device, sizes))
    rel = abs(dev_nc1 - cpu_nc1) / abs(cpu_nc1)
    rows.append(Row(f"neural collapse {sizes.nc_rows:,} x {sizes.nc_dim}: seconds (NC1 rel. diff)",
                    f"{cpu_s:.2f} s", f"{dev_s:.2f} s ({rel:.1e})", f"diff <= {NC_TOL:g}",
                    rel <= NC_TOL, peak))  # fmt: skip
    return rows


def table(rows: list[Row], device_label: str) -> str:
    head = ["check", "CPU", device_label, "target", "met", "peak GPU memory"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N; cpu = self-check")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (the CPU self-check of this script)"
    )
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    if args.device != "cpu" and not args.device.startswith("cuda"):
        print(f"--device {args.device!r}: use cuda, cuda:N, or cpu (self-check)", file=sys.stderr)
        return 2
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    rows = run_checks(args.device, sizes, lambda msg: print(f"gpu-check: {msg}", file=sys.stderr))
    if args.device.startswith("cuda"):
        label = torch.cuda.get_device_name(torch.device(args.device))
        title = f"GPU check on {label}"
    else:
        label = "CPU (self-check)"
        title = "SELF-CHECK OF benchmarks/gpu_check.py ON THE CPU: not the GPU check"
    print(
        f"{title}; `python benchmarks/gpu_check.py {' '.join(argv or sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {torch.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores; sizes {'quick' if args.quick else 'full'}; "
        f"{time.perf_counter() - started:.0f} s; 1-min load average {os.getloadavg()[0]:.2f}.\n"
    )
    print(table(rows, label))
    return 1 if any(row.met is False for row in rows) else 0


def quiet_libraries() -> None:
    """No "Loading weights" bars nor library FutureWarnings between the step lines (run as a
    script only: a test calling `main` keeps its process's settings)."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


if __name__ == "__main__":
    quiet_libraries()
    sys.exit(main())
