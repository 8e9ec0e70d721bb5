"""SAE training throughput and memory: our trainer vs SAELens's `SAETrainer` on the same
activations (TopK, d_sae = 8 x d_in, k = 32), plus RSS while training from a store.

Run from the repository root::

    python benchmarks/bench_sae.py            # full: d_in 256, 409,600 rows, 60 steps
    python benchmarks/bench_sae.py --quick    # smoke run (< 2 min after the venv exists)

sae-lens needs transformer-lens < 4, so it cannot share our environment: the script creates
`benchmarks/out/venv-saelens` (torch==2.13.0 first, then sae-lens) on first use and runs the
SAELens side there. If that fails, it says so and compares against a plain PyTorch TopK loop
run in our environment instead.

Data: planted sparse activations (non-negative combinations of 8 of 4 x d_in random unit
directions, plus noise), written once as a store (`benchmarks/out/sae_store`, one site). Ours
trains from the store (shuffled memory-mapped gathers, `analyses.sae.train`); SAELens's data
provider (and the plain fallback) gathers shuffled rows from the same memory-mapped shards, every
chunk of the store. Full mode meets issue 21's sizes: d_in 256, 409,600 rows, 60 steps. Each trainer runs
in its own process with the same batch size, learning rate and torch's default thread count;
tokens/s is measured over the steps after the warm-up steps (per-step timestamps), peak RSS is
the process's VmHWM. The store run also samples RSS (total and anonymous) every 0.1 s.
Prints one table and appends nothing: copy the table into RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import proc_status, run_result_child, write_store  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
VENV = OUT / "venv-saelens"
SITE = "blocks.0.hook_resid_post"


class RssSampler(threading.Thread):
    """Samples (time, VmRSS, RssAnon) every `period` seconds until stopped."""

    def __init__(self, period: float = 0.1):
        super().__init__(daemon=True)
        self.period, self._halt = period, threading.Event()
        self.samples: list[tuple[float, int, int]] = []

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.perf_counter(), proc_status("VmRSS"), proc_status("RssAnon")))
            time.sleep(self.period)

    def stop(self) -> list:
        self._halt.set()
        self.join()
        return self.samples


def make_store(path: Path, n_rows: int, d_in: int, seed: int = 0) -> None:
    sys.path.insert(0, str(HERE.parent))
    rng = np.random.default_rng(seed)
    m = 4 * d_in
    directions = rng.standard_normal((m, d_in)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)

    def rows(n: int) -> np.ndarray:
        coef = np.zeros((n, m), np.float32)
        idx = np.argsort(rng.random((n, m)), axis=1)[:, :8]
        np.put_along_axis(coef, idx, rng.uniform(0.5, 2.0, (n, 8)).astype(np.float32), axis=1)
        return coef @ directions + 0.05 * rng.standard_normal((n, d_in)).astype(np.float32)

    write_store(path, SITE, n_rows, rows, "planted")


# --------------------------------------------------------------------------- child: ours
def child_ours(args: argparse.Namespace) -> dict:
    import torch  # noqa: F401

    from analyses.sae import TrainConfig, create_sae, read_log, train
    from workbench.store import ActivationStore

    store = ActivationStore(args.store)
    d_in = store.site_info(SITE)["width"]
    sae = create_sae("topk", d_in=d_in, d_sae=8 * d_in, k=32)
    config = TrainConfig(
        batch_size=args.batch_size,
        n_steps=args.steps,
        lr=args.lr,
        warmup_steps=10,
        log_every=1,
        dead_window_tokens=10 * args.batch_size,
    )
    sampler = RssSampler()
    sampler.start()
    out = Path(tempfile.mkdtemp(dir=OUT))
    t0 = time.perf_counter()
    train(sae, store, out, config, site=SITE, resume=False)
    samples = sampler.stop()
    steps = [r for r in read_log(out) if r["event"] == "step"]
    w = args.warmup
    rate = (len(steps) - w) * args.batch_size / (steps[-1]["time_s"] - steps[w - 1]["time_s"])
    quarter = t0 + steps[len(steps) // 4]["time_s"]
    at_quarter = min(samples, key=lambda s: abs(s[0] - quarter))
    return {
        "tokens_per_s": rate,
        "peak_rss": proc_status("VmHWM"),
        "rss_quarter": at_quarter[1],
        "rss_end": samples[-1][1],
        "anon_quarter": at_quarter[2],
        "anon_end": samples[-1][2],
        "out": str(out),
    }


class StoreRows:
    """Every chunk of the store's one site, memory-mapped, addressed by global row index (the
    peers read the same rows as ours, not only the first chunk)."""

    def __init__(self, store: str):
        self.shards = [
            np.load(f, mmap_mode="r") for f in sorted(Path(store).glob("sites/*/chunk_*.npy"))
        ]
        self.starts = np.cumsum([0] + [len(x) for x in self.shards])
        self.width = self.shards[0].shape[1]

    def __len__(self) -> int:
        return int(self.starts[-1])

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), width) float32 of the sorted global `rows`."""
        which = np.searchsorted(self.starts, rows, side="right") - 1
        return np.concatenate(
            [
                np.asarray(self.shards[c][rows[which == c] - self.starts[c]])
                for c in np.unique(which)
            ]
        )


def child_plain(args: argparse.Namespace) -> dict:
    """A plain PyTorch TopK loop (the fallback peer): MSE, Adam, unit-norm decoder, no AuxK."""
    import torch

    x_all = StoreRows(args.store)
    d_in = x_all.width
    d_sae = 8 * d_in
    w_dec = torch.randn(d_sae, d_in)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    w_dec.requires_grad_(True)
    w_enc = w_dec.detach().T.clone().requires_grad_(True)
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = torch.zeros(d_in, requires_grad=True)
    opt = torch.optim.Adam([w_enc, w_dec, b_enc, b_dec], lr=args.lr)
    perm = np.random.default_rng(0).permutation(len(x_all))
    stamps = []
    for step in range(args.steps):
        rows = np.sort(perm[(step * args.batch_size) % len(x_all) :][: args.batch_size])
        x = torch.from_numpy(x_all.gather(rows))
        h = (x - b_dec) @ w_enc + b_enc
        top = h.topk(32, dim=-1)
        z = torch.zeros_like(h).scatter(-1, top.indices, torch.relu(top.values))
        loss = ((z @ w_dec + b_dec - x) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            w_dec /= w_dec.norm(dim=1, keepdim=True)
        stamps.append(time.perf_counter())
    w = args.warmup
    return {
        "tokens_per_s": (len(stamps) - w) * args.batch_size / (stamps[-1] - stamps[w - 1]),
        "peak_rss": proc_status("VmHWM"),
    }


# ------------------------------------------------------------------------ child: SAELens
SAELENS_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
from sae_lens import SAE
from sae_lens.config import SAETrainerConfig, LoggingConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer
a = json.loads(sys.argv[1])
def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
shards = [np.load(f, mmap_mode="r") for f in sorted(Path(a["store"]).glob("sites/*/chunk_*.npy"))]
starts = np.cumsum([0] + [len(x) for x in shards])
n_rows, d_in = int(starts[-1]), shards[0].shape[1]
def gather(rows):  # every chunk of the store, as ours and the plain peer read it
    which = np.searchsorted(starts, rows, side="right") - 1
    return np.concatenate([np.asarray(shards[c][rows[which == c] - starts[c]]) for c in np.unique(which)])
perm = np.random.default_rng(0).permutation(n_rows)
stamps = []
def provider():
    step = 0
    while True:
        start = (step * a["batch_size"]) % n_rows
        rows = np.sort(perm[start:start + a["batch_size"]])
        stamps.append(time.perf_counter())
        yield torch.from_numpy(gather(rows))
        step += 1
sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=8 * d_in, k=32, dtype="float32", device="cpu"))
cfg = SAETrainerConfig(total_training_samples=a["steps"] * a["batch_size"],
    train_batch_size_samples=a["batch_size"], lr=a["lr"], lr_end=a["lr"] / 10, lr_warm_up_steps=10,
    device="cpu", dead_feature_window=10, logger=LoggingConfig(log_to_wandb=False))
SAETrainer(cfg, sae, provider()).fit()
end = time.perf_counter()
w = a["warmup"]
# batch w is requested when step w starts; steps w .. steps-1 end by `end`
rate = (a["steps"] - w) * a["batch_size"] / (end - stamps[w]) if a["steps"] > w else float("nan")
check = None
if a.get("ours"):
    ours = SAE.load_from_disk(a["ours"], device="cpu")
    x = torch.from_numpy(np.asarray(shards[0][:256]))
    with torch.no_grad():
        check = ours(x).numpy().tolist()
print("RESULT " + json.dumps({"tokens_per_s": rate, "peak_rss": status("VmHWM"), "check": check}))
"""


def ensure_venv() -> str | None:
    """The venv's python, creating it if needed; None (with the reason printed) on failure."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import sae_lens"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "pip"), "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "sae-lens"], check=True)
        subprocess.run(probe, check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"sae-lens could not be installed ({exc}); comparing with a plain PyTorch loop")
        return None
    return str(python)


def run_child(kind: str, args: argparse.Namespace, python: str | None = None, extra=None) -> dict:
    payload = {
        "store": args.store,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "lr": args.lr,
        "warmup": args.warmup,
        **(extra or {}),
    }
    if kind == "saelens":
        assert python is not None, "the SAELens peer needs its venv's python"
        cmd = [python, "-c", SAELENS_CHILD, json.dumps(payload)]
    else:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--store",
            args.store,
            "--batch-size",
            str(args.batch_size),
            "--steps",
            str(args.steps),
            "--lr",
            str(args.lr),
            "--warmup",
            str(args.warmup),
        ]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "WANDB_MODE": "disabled"}
    return run_result_child(kind, cmd, env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--store")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.child:
        fn = {"ours": child_ours, "plain": child_plain}[args.child]
        print("RESULT " + json.dumps(fn(args)))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    d_in, n_rows = (128, 65536) if args.quick else (256, 409600)
    args.steps = args.steps or (25 if args.quick else 60)
    args.store = str(OUT / f"sae_store_{d_in}_{n_rows}")
    make_store(Path(args.store), n_rows, d_in)
    python = ensure_venv()
    peer = "saelens" if python else "plain"
    started = time.time()
    load_before = os.getloadavg()[0]
    ours_runs, peer_runs = [], []
    for r in range(args.rounds):  # alternate, so load from other jobs hits both alike
        order = ["ours", peer] if r % 2 == 0 else [peer, "ours"]
        for kind in order:
            if kind == "ours":
                ours_runs.append(run_child("ours", args))
            else:
                peer_runs.append(run_child(peer, args, python))
    # interop: SAELens loads our export and reproduces our reconstruction
    interop = "not checked (no sae-lens)"
    if python:
        sys.path.insert(0, str(HERE.parent))
        import torch

        from analyses.sae import load_sae, save_saelens

        sae, meta = load_sae(ours_runs[-1]["out"])
        export = Path(ours_runs[-1]["out"]) / "saelens"
        save_saelens(sae, export, meta)
        got = run_child(
            "saelens",
            argparse.Namespace(**{**vars(args), "steps": 1, "warmup": 0}),
            python,
            {"ours": str(export)},
        )
        x = np.load(sorted(Path(args.store).glob("sites/*/chunk_000000.npy"))[0], mmap_mode="r")
        with torch.no_grad():
            mine = sae(torch.from_numpy(np.asarray(x[:256]))).numpy()
        diff = float(np.abs(np.asarray(got["check"]) - mine).max())
        interop = f"SAE.load_from_disk of our export reproduces our x_hat (max |diff| {diff:.2e})"
    med = lambda runs, key: float(np.median([r[key] for r in runs]))  # noqa: E731
    ours_rate, peer_rate = med(ours_runs, "tokens_per_s"), med(peer_runs, "tokens_per_s")
    ours_rss, peer_rss = med(ours_runs, "peak_rss"), med(peer_runs, "peak_rss")
    last = ours_runs[-1]
    mib = 1 << 20
    peer_name = "SAELens SAETrainer" if python else "plain PyTorch TopK loop"
    import torch

    print(
        f"bench_sae ({'quick' if args.quick else 'full'}) {time.strftime('%Y-%m-%d %H:%M')} "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}; d_in {d_in}, d_sae {8 * d_in}, k 32, batch {args.batch_size}, "
        f"{args.steps} steps ({args.warmup} warm-up), {args.rounds} alternating rounds, "
        f"store {n_rows} rows ({n_rows * d_in * 4 / mib:.0f} MiB); load {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f}; took {time.time() - started:.0f} s"
    )
    print()
    print("| Benchmark | Ours | Peer | Ratio | Target | Met |")
    print("|---|---|---|---|---|---|")
    ratio = ours_rate / peer_rate
    print(
        f"| TopK training tokens/s vs {peer_name} | {ours_rate:,.0f} | {peer_rate:,.0f} | "
        f"{ratio:.2f}x | >= 1.2x | {'yes' if ratio >= 1.2 else '**NO**'} |"
    )
    paired = [
        o["tokens_per_s"] / p["tokens_per_s"] for o, p in zip(ours_runs, peer_runs, strict=True)
    ]
    print(
        f"| the same, median of the per-round ratios (each round's two runs back to back) | "
        f"- | - | {float(np.median(paired)):.2f}x (rounds: "
        f"{', '.join(f'{r:.2f}' for r in paired)}) | info | |"
    )
    print(
        f"| peak RSS (VmHWM) | {ours_rss / mib:.0f} MiB | {peer_rss / mib:.0f} MiB | "
        f"{ours_rss / peer_rss:.2f} | <= 1.0 | {'yes' if ours_rss <= peer_rss else '**NO**'} |"
    )
    growth = (last["anon_end"] - last["anon_quarter"]) / mib
    print(
        f"| anonymous RSS growth, 25% -> 100% of steps (store) | {growth:+.1f} MiB | - | - | "
        f"< 32 MiB | {'yes' if growth < 32 else '**NO**'} |"
    )
    print(
        f"| total RSS 25% -> 100% (incl. page-cache-backed mmap pages) | "
        f"{last['rss_quarter'] / mib:.0f} -> {last['rss_end'] / mib:.0f} MiB | - | - | info | |"
    )
    print()
    print(
        f"- runs: ours {[round(r['tokens_per_s']) for r in ours_runs]} tokens/s, peer "
        f"{[round(r['tokens_per_s']) for r in peer_runs]} tokens/s"
    )
    print(f"- interop: {interop}")


if __name__ == "__main__":
    main()
