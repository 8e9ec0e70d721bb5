"""SAE training streamed from a store under a memory cap vs from memory, on the same rows.

Run from the repository root::

    python benchmarks/bench_sae_stream.py            # ~1.5 GB store, cap 512 MiB (a few min)
    python benchmarks/bench_sae_stream.py --quick    # ~400 MB store, cap 256 MiB (~1-2 min)

Data: a float32 store of one site (`benchmarks/out/sae_stream_<d>_<rows>`, written once):
rows = (n, 64) Gaussian codes times a fixed (64, d_in) matrix plus noise. The same TopK SAE
(d_sae = 8 x d_in, k = 32) trains with the same settings twice, each in its own process with
torch's default thread count:

- memory: the site read whole into an array first (`store.read`), then `train(array)` (the
  permutation order: each batch gathered from the array);
- stream: `train(store, memory_cap=CAP)` (the buffered order of `analyses.sae.stream`: windows
  of rows read with plain reads into a shuffle buffer, the next buffer read by a background
  thread while the current one trains).

tokens/s is measured over the steps after the warm-up ones (per-step log timestamps, so the
memory run's up-front read of the site is not counted; the stream run's buffer reads are).
On a shared machine wall-clock rates swing with other jobs' load, so the table also gives
a paired rate (one process, both orders, a step of each in turn: load hits both alike),
tokens per CPU-second of the training call (the streamed run's reads included) and the time
the trainer waited for each batch (the data path's own cost, which is what streaming changes).
Peak RSS: VmHWM (total) and the largest RssAnon sampled every 50 ms; "growth" is that peak
minus RssAnon after a 2-step warm-up on a few rows (torch's kernels and pools, which the cap
does not cover), i.e. what training on this data costs: the memory run's array, the streamed
run's buffers, and each one's step tensors and SAE. The runs alternate over
`--rounds` rounds (load from other jobs hits both alike); medians are reported. Prints one
table: copy it into RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import proc_status, run_result_child, write_store  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
SITE = "blocks.0.hook_resid_post"
MiB = 1 << 20


class AnonPeak(threading.Thread):
    """The largest RssAnon seen every `period` seconds until stopped."""

    def __init__(self, period: float = 0.05):
        super().__init__(daemon=True)
        self.period, self.peak, self._halt = period, 0, threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, proc_status("RssAnon"))
            time.sleep(self.period)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return max(self.peak, proc_status("RssAnon"))


def make_store(path: Path, n_rows: int, d_in: int, seed: int = 0) -> None:
    """Low-rank Gaussian rows (64 factors) plus noise: (n_rows, d_in) float32."""
    sys.path.insert(0, str(ROOT))
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((64, d_in)).astype(np.float32) / 8

    def rows(n: int) -> np.ndarray:
        codes = rng.standard_normal((n, 64), dtype=np.float32)
        return codes @ mix + 0.1 * rng.standard_normal((n, d_in), dtype=np.float32)

    write_store(path, SITE, n_rows, rows, "synthetic")


class DataWait:
    """Wraps the data orders' `batches` to add up the seconds the trainer waits for a batch
    (reads, gathers, and for the streamed order any wait on the background read)."""

    def __init__(self) -> None:
        from analyses.sae import stream

        self.seconds, self.batches = 0.0, 0
        for cls in (stream.BufferedOrder, stream.PermutationOrder):
            cls.batches = self._timed(cls.batches)  # type: ignore[method-assign]

    def _timed(self, batches):  # type: ignore[no-untyped-def]
        def wrapper(order, *args, **kwargs):  # type: ignore[no-untyped-def]
            inner = batches(order, *args, **kwargs)
            try:
                while True:
                    t0 = time.perf_counter()
                    try:
                        batch = next(inner)
                    except StopIteration:
                        return
                    self.seconds += time.perf_counter() - t0
                    self.batches += 1
                    yield batch
            finally:
                inner.close()

        return wrapper


def child(args: argparse.Namespace) -> dict:
    import torch

    from analyses.sae import TrainConfig, create_sae, read_log, train
    from workbench.store import ActivationStore

    if args.threads:
        torch.set_num_threads(args.threads)

    store = ActivationStore(args.store)
    d_in = store.site_info(SITE)["width"]
    sae = create_sae("topk", d_in=d_in, d_sae=8 * d_in, k=32)
    # warm torch up (kernels, autograd, allocator pools) so the baseline is the runtime's
    warm = np.random.default_rng(0).standard_normal((2 * args.batch_size, d_in), np.float32)
    train(sae, warm, tempfile.mkdtemp(dir=OUT), TrainConfig(batch_size=args.batch_size, n_steps=2))
    sae = create_sae("topk", d_in=d_in, d_sae=8 * d_in, k=32)
    base = proc_status("RssAnon")
    wait = DataWait()
    sampler = AnonPeak()
    sampler.start()
    config = TrainConfig(
        batch_size=args.batch_size,
        n_steps=args.steps,
        warmup_steps=10,
        log_every=1,
        dead_window_tokens=10 * args.batch_size,
        memory_cap=args.cap if args.child == "stream" else None,
    )
    out = Path(tempfile.mkdtemp(dir=OUT))
    t_read = 0.0
    if args.child == "memory":
        t0 = time.perf_counter()
        data = store.read(SITE)  # (n_rows, d_in) float32 in memory
        t_read = time.perf_counter() - t0
        cpu = time.process_time()
        train(sae, data, out, config, resume=False)
    else:
        cpu = time.process_time()
        train(sae, store, out, config, site=SITE, resume=False)
    cpu = time.process_time() - cpu
    anon = sampler.stop()
    records = read_log(out)
    steps = [r for r in records if r["event"] == "step"]
    w = args.warmup
    rate = (len(steps) - w) * args.batch_size / (steps[-1]["time_s"] - steps[w - 1]["time_s"])
    return {
        "tokens_per_s": rate,
        "peak_rss": proc_status("VmHWM"),
        "peak_anon": anon,
        "anon_growth": anon - base,
        "read_s": t_read,
        "tokens_per_cpu_s": args.steps * args.batch_size / cpu,
        "wait_ms": 1e3 * wait.seconds / max(1, wait.batches),
        "order": records[0]["source"].get("order"),
        "buffer_rows": records[0]["source"].get("buffer_rows"),
        "threads": torch.get_num_threads(),
    }


def child_paired(args: argparse.Namespace) -> dict:
    """Both data orders in one process, one step of each in turn (which goes first alternates):
    other jobs' load hits both alike. Same SAE step as the trainer (loss, backward, clipping,
    Adam, decoder renormalisation), without its logging."""
    import torch

    from analyses.sae import create_sae
    from analyses.sae.data import RowSource
    from analyses.sae.stream import choose_order, parse_memory
    from workbench.store import ActivationStore

    if args.threads:
        torch.set_num_threads(args.threads)
    store = ActivationStore(args.store)
    d_in = store.site_info(SITE)["width"]
    arrays = RowSource(array=store.read(SITE))
    streamed = RowSource(store=store, site=SITE)
    saes = {k: create_sae("topk", d_in=d_in, d_sae=8 * d_in, k=32) for k in ("memory", "stream")}
    n_params = sum(p.numel() for p in saes["stream"].parameters())
    orders = {
        "memory": choose_order(arrays, None, args.batch_size, 8 * d_in, n_params),
        "stream": choose_order(
            streamed, parse_memory(args.cap), args.batch_size, 8 * d_in, n_params
        ),
    }
    gens = {k: o.batches(args.batch_size, 0, 0) for k, o in orders.items()}
    opts = {k: torch.optim.Adam(sae.parameters(), lr=4e-4) for k, sae in saes.items()}
    spent = {k: 0.0 for k in saes}
    dead = torch.zeros(8 * d_in, dtype=torch.bool)
    for step in range(args.steps):
        for k in ("memory", "stream") if step % 2 == 0 else ("stream", "memory"):
            t0 = time.perf_counter()
            x = torch.from_numpy(next(gens[k]))
            loss, _, _, _ = saes[k].loss(x, dead)
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            saes[k].before_step()
            torch.nn.utils.clip_grad_norm_(saes[k].parameters(), 1.0)
            opts[k].step()
            saes[k].after_step()
            if step >= args.warmup:
                spent[k] += time.perf_counter() - t0
    for gen in gens.values():
        gen.close()
    n = (args.steps - args.warmup) * args.batch_size
    return {k: n / v for k, v in spent.items()}


def run_child(kind: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--store", args.store, "--cap", args.cap]
    cmd += ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    cmd += ["--warmup", str(args.warmup), "--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return run_result_child(kind, cmd, env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--store")
    parser.add_argument("--cap")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.child:
        fn = child_paired if args.child == "paired" else child
        print("RESULT " + json.dumps(fn(args)))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    d_in, n_rows = (128, 786432) if args.quick else (256, 1474560)
    args.cap = args.cap or ("256MiB" if args.quick else "512MiB")
    args.steps = args.steps or (40 if args.quick else 150)
    args.store = str(OUT / f"sae_stream_{d_in}_{n_rows}")
    t0 = time.time()
    make_store(Path(args.store), n_rows, d_in)
    made = time.time() - t0
    started = time.time()
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {"memory": [], "stream": []}
    for r in range(args.rounds):
        for kind in ("memory", "stream") if r % 2 == 0 else ("stream", "memory"):
            runs[kind].append(run_child(kind, args))
    paired = run_child("paired", args)
    load_after = os.getloadavg()

    def med(kind: str, key: str) -> float:
        return float(np.median([x[key] for x in runs[kind]]))

    site_bytes = n_rows * d_in * 4
    mem_rate, stream_rate = med("memory", "tokens_per_s"), med("stream", "tokens_per_s")
    ratio = mem_rate / stream_rate
    import torch

    from analyses.sae.stream import parse_memory

    print(
        f"bench_sae_stream ({'quick' if args.quick else 'full'}) "
        f"{time.strftime('%Y-%m-%d %H:%M')} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} ({runs['stream'][0]['threads']} "
        f"threads); TopK d_in {d_in}, d_sae {8 * d_in}, k 32, batch {args.batch_size}, "
        f"{args.steps} steps ({args.warmup} warm-up), {args.rounds} alternating rounds; store "
        f"{n_rows} rows float32 = {site_bytes / MiB:.0f} MiB (written in {made:.0f} s), cap "
        f"{args.cap} -> buffers of {runs['stream'][0]['buffer_rows']} rows; load average "
        f"{load_before[0]:.1f} -> {load_after[0]:.1f}; took {time.time() - started:.0f} s"
    )
    print()
    print("| Benchmark | From memory | Streamed (cap) | Ratio | Target | Met |")
    print("|---|---|---|---|---|---|")
    print(
        f"| TopK training tokens/s (ratio: memory / streamed) | {mem_rate:,.0f} | "
        f"{stream_rate:,.0f} | {ratio:.2f} | <= 1.2 | {'yes' if ratio <= 1.2 else '**NO**'} |"
    )
    print(
        f"| same, paired in one process (a step of each in turn) | {paired['memory']:,.0f} | "
        f"{paired['stream']:,.0f} | {paired['memory'] / paired['stream']:.2f} | <= 1.2 | "
        f"{'yes' if paired['memory'] / paired['stream'] <= 1.2 else '**NO**'} |"
    )
    mem_cpu, stream_cpu = med("memory", "tokens_per_cpu_s"), med("stream", "tokens_per_cpu_s")
    print(
        f"| tokens per CPU-second of the process (ratio: memory / streamed) | {mem_cpu:,.0f} | "
        f"{stream_cpu:,.0f} | {mem_cpu / stream_cpu:.2f} | info | |"
    )
    mem_wait, stream_wait = med("memory", "wait_ms"), med("stream", "wait_ms")
    print(
        f"| trainer's wait for a batch, ms per step | {mem_wait:.1f} | {stream_wait:.1f} | "
        f"{stream_wait / max(mem_wait, 1e-9):.1f} | info | |"
    )
    mem_anon, stream_anon = med("memory", "peak_anon"), med("stream", "peak_anon")
    mem_grow, stream_grow = med("memory", "anon_growth"), med("stream", "anon_growth")
    cap = parse_memory(args.cap)
    print(
        f"| anonymous RSS growth while training (above the warmed-up runtime) | "
        f"{mem_grow / MiB:.0f} MiB | {stream_grow / MiB:.0f} MiB | "
        f"{stream_grow / mem_grow:.2f} | streamed <= cap ({cap / MiB:.0f} MiB) | "
        f"{'yes' if stream_grow <= cap else '**NO**'} |"
    )
    mem_rss, stream_rss = med("memory", "peak_rss"), med("stream", "peak_rss")
    print(
        f"| peak anonymous RSS | {mem_anon / MiB:.0f} MiB | {stream_anon / MiB:.0f} MiB | "
        f"{stream_anon / mem_anon:.2f} | info | |"
    )
    print(
        f"| peak total RSS (VmHWM, incl. mapped file pages) | {mem_rss / MiB:.0f} MiB | "
        f"{stream_rss / MiB:.0f} MiB | {stream_rss / mem_rss:.2f} | info | |"
    )
    print()
    print(
        f"- runs (tokens/s): memory {[round(x['tokens_per_s']) for x in runs['memory']]}, "
        f"stream {[round(x['tokens_per_s']) for x in runs['stream']]}; the memory run first "
        f"reads the site into an array in {med('memory', 'read_s'):.1f} s (not counted)"
    )


if __name__ == "__main__":
    main()
