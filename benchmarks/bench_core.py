"""Core performance benchmarks: capture overhead, early stopping, and store write throughput.

Run from the repository root::

    python benchmarks/bench_core.py            # full sizes (several minutes)
    python benchmarks/bench_core.py --quick    # CI-sized smoke (< 60 s)

Prints one table of ratios measured in this run and refreshes this mode's section of
`benchmarks/RESULTS.md` (skip with `--no-write`). See `benchmarks/README.md` for what each row
compares. Timings are medians of N repetitions after warm-up; the variants of one comparison are
run interleaved (round robin, rotating order) so that drift on a busy machine hits all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import forward_to  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
MiB = 1 << 20
RESID_POST = "blocks.*.hook_resid_post"
LAYER0 = "blocks.0.hook_resid_post"
STORE_SITE = "blocks.0.hook_resid_post"
RSS_LIMIT = 1536 * MiB  # 1.5 GB
RSS_GROWTH_LIMIT = 64 * MiB  # "flat": RSS after 100% of the rows minus RSS after 25% of them
STORE_KINDS = ("plain", "plain_fsync", "store")
STORE_EXIT_MISSING = 3  # a store child's exit status when workbench.store has no StoreWriter


@dataclass(frozen=True)
class Sizes:
    texts: int  # texts per batch
    max_tokens: int  # tokens per text (truncation length)
    reps: int  # timed repetitions per variant (median reported)
    warmup: int
    store_rows: int  # rows (tokens) streamed into the store
    store_width: int
    chunk_rows: int
    store_reps: int  # alternating plain/store runs per kind


FULL = Sizes(
    texts=32,
    max_tokens=64,
    reps=21,
    warmup=3,
    store_rows=1 << 20,
    store_width=384,
    chunk_rows=65536,
    store_reps=5,
)
QUICK = Sizes(
    texts=8,
    max_tokens=64,
    reps=5,
    warmup=1,
    store_rows=1 << 18,
    store_width=384,
    chunk_rows=65536,
    store_reps=2,
)

NEOX = {"n_layers": 6, "d_model": 256, "n_heads": 8, "vocab_words": 400}


@dataclass(frozen=True)
class Target:
    op: str  # "<=", ">=" or "<"
    value: float
    text: str

    def met(self, x: float) -> bool:
        return {"<=": x <= self.value, ">=": x >= self.value, "<": x < self.value}[self.op]


@dataclass(frozen=True)
class Row:
    benchmark: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: reported for information, no target


@dataclass
class Section:
    """Rows of the table and the notes printed under it."""

    rows: list[Row]
    notes: list[str]

    def __add__(self, other: Section) -> Section:
        return Section(self.rows + other.rows, self.notes + other.notes)


def ratio_row(
    benchmark: str,
    ours: list[float],
    baseline: list[float],
    target: Target | None,
    *,
    inverse: bool = False,
    unit: str = "ms",
    scale: float = 1e3,
) -> Row:
    """A row comparing two series of times taken in the same rounds.

    Shown: the medians, their ratio ours/baseline (baseline/ours with `inverse`), and +- half
    the interquartile range of the per-round ratios, a gauge of the noise.
    """
    med_ours, med_base = statistics.median(ours), statistics.median(baseline)
    ratio = med_base / med_ours if inverse else med_ours / med_base
    paired = [b / o if inverse else o / b for o, b in zip(ours, baseline, strict=True)]
    spread = 0.0
    if len(paired) > 1:
        q1, _, q3 = statistics.quantiles(paired, n=4, method="inclusive")
        spread = (q3 - q1) / 2
    suffix = "x" if inverse else ""
    return Row(
        benchmark,
        f"{med_ours * scale:.4g} {unit}",
        f"{med_base * scale:.4g} {unit}",
        f"{ratio:.3f}{suffix} ± {spread:.3f}",
        target.text if target else "info",
        target.met(ratio) if target else None,
    )


# ------------------------------------------------------------------------------------ timing
def time_interleaved(
    fns: dict[str, Callable[[], object]], reps: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per call of each function, one sample per round; calls interleaved, the order
    rotated each round, so that drift on a busy machine hits every function alike."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


# ------------------------------------------------------------------------------------ inputs
def corpus_words() -> list[str]:
    """Offline technical English (the project's `text` dataset), as one word stream."""
    from workbench.data import load_dataset

    return " ".join(e.text for e in load_dataset("text")).split()


def make_texts(words: list[str], n: int, max_tokens: int) -> list[str]:
    """`n` texts of varying length (3/4 to all of `max_tokens` words), so batches are padded."""
    lo = max_tokens * 3 // 4
    texts, pos = [], 0
    for i in range(n):
        length = lo + (i * 7) % (max_tokens - lo + 1)
        texts.append(" ".join(words[pos : pos + length]))
        pos += length
    return texts


# ---------------------------------------------------------------------------- capture bench


def run_with_cache(handle, batch, names: list[str]):
    """TransformerLens's own route to the same activations (no_grad, as `handle.run`)."""
    import torch

    with torch.no_grad():
        _, cache = handle.model.run_with_cache(
            batch.input_ids, names_filter=names, attention_mask=batch.attention_mask
        )
    return cache


def check_capture_matches_cache(handle, batch, names: list[str]) -> None:
    """Guard: the captured rows equal TransformerLens's cache at the real tokens."""
    import torch

    from workbench.hooks.capture import capture

    acts = capture(handle, names, batch, positions="all")
    cache = run_with_cache(handle, batch, names)
    real = batch.attention_mask.bool()
    for name in names:
        torch.testing.assert_close(acts[name], cache[name][real], rtol=0, atol=0)


def stop_at_layer_note(handle, batch, last_site: str) -> str:
    """Why the truncated baseline is a raising hook: what `stop_at_layer=n_layers` returns."""
    import torch

    cfg = handle.model.cfg
    with torch.no_grad():
        out = handle.model(
            batch.input_ids, attention_mask=batch.attention_mask, stop_at_layer=cfg.n_layers
        )
    if out.shape[-1] == cfg.d_model:
        return f"`forward(stop_at_layer={cfg.n_layers})` returns the residual stream."
    return (
        f"`forward(stop_at_layer={cfg.n_layers})` returns {tuple(out.shape)}, the full "
        "logits (TransformerLens 4 stops *before* block k, so no value stops after the last "
        "block): the truncated baseline is the plain forward ended by a bare raising hook on "
        f"{last_site}."
    )


def bench_capture(
    label: str, handle, texts: list[str], sizes: Sizes, layer0_target: Target | None
) -> Section:
    from workbench.hooks.capture import capture
    from workbench.sites.names import expand_sites

    batch = handle.prepare(texts, max_length=sizes.max_tokens)
    names = expand_sites(handle.sites(), RESID_POST)
    check_capture_matches_cache(handle, batch, names)
    t = time_interleaved(
        {
            "forward": lambda: handle.run(batch),
            "forward_to_last": lambda: forward_to(handle, batch, names[-1]),
            "capture": lambda: capture(handle, RESID_POST, batch, positions="all"),
            "run_with_cache": lambda: run_with_cache(handle, batch, names),
            "capture_layer0": lambda: capture(handle, LAYER0, batch, positions="all"),
        },
        sizes.reps,
        sizes.warmup,
    )
    le105, le1 = Target("<=", 1.05, "<= 1.05"), Target("<=", 1.0, "<= 1.0")
    rows = [
        ratio_row(
            f"{label}: capture {len(names)} resid_post / full forward",
            t["capture"],
            t["forward"],
            le105,
        ),
        ratio_row(
            f"{label}: capture {len(names)} resid_post / forward to {names[-1]}",
            t["capture"],
            t["forward_to_last"],
            None,
        ),
        ratio_row(
            f"{label}: capture {len(names)} resid_post / run_with_cache (same hooks)",
            t["capture"],
            t["run_with_cache"],
            le1,
        ),
        ratio_row(
            f"{label}: speed-up of capture {LAYER0} over full forward",
            t["capture_layer0"],
            t["forward"],
            layer0_target,
            inverse=True,
        ),
    ]
    note = (
        f"{label}: batch {tuple(batch.input_ids.shape)} left-padded, "
        f'{int(batch.attention_mask.sum())} real tokens, positions="all"; captured rows '
        f"checked equal to run_with_cache's. {stop_at_layer_note(handle, batch, names[-1])}"
    )
    return Section(rows, [note])


def neox_folder(root: Path, words: list[str]) -> Path:
    from workbench.zoo.hf_folder import build_gpt_neox

    vocab = [w for w, _ in Counter(words).most_common(NEOX["vocab_words"])]
    return build_gpt_neox(
        root / "neox",
        vocab,
        n_layers=NEOX["n_layers"],
        d_model=NEOX["d_model"],
        n_heads=NEOX["n_heads"],
    )


def capture_section(sizes: Sizes, tmp: Path) -> Section:
    from workbench import load_model

    words = corpus_words()
    texts = make_texts(words, sizes.texts, sizes.max_tokens)
    minilm = bench_capture("MiniLM", load_model("minilm", device="cpu"), texts, sizes, None)
    neox = load_model(neox_folder(tmp, words), device="cpu")
    label = f"GPT-NeoX {NEOX['n_layers']}L d{NEOX['d_model']}"
    return minilm + bench_capture(label, neox, texts, sizes, Target(">=", 3.0, ">= 3x"))


# ------------------------------------------------------------------------------ store bench
def chunk_data(
    rng: np.random.Generator, start: int, rows: int, width: int, tokens_per_example: int = 64
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One chunk of random float32 activations and its row fields."""
    acts = rng.random((rows, width), dtype=np.float32)
    index = np.arange(start, start + rows, dtype=np.int64)
    fields = {
        "token_ids": rng.integers(0, 30000, rows, dtype=np.int64),
        "example_index": index // tokens_per_example,
        "position": index % tokens_per_example,
    }
    return acts, fields


def store_child(kind: str, rows: int, width: int, chunk_rows: int, out: Path) -> dict:
    """Stream `rows` x `width` float32 into `out` ("store": StoreWriter; "plain": np.save of each
    chunk's arrays into one file, "plain_fsync": the same plus an fsync before close). Returns
    write seconds (data generation excluded), generation seconds and RSS (bytes)."""
    import psutil

    if kind == "store":
        try:
            from workbench.store import StoreWriter
        except ImportError as e:
            print(json.dumps({"missing": str(e)}))
            sys.exit(STORE_EXIT_MISSING)
        spec = {"benchmark": "bench_core", "rows": rows, "width": width, "dtype": "float32"}
        writer = StoreWriter(out, spec)

        def write(acts: np.ndarray, fields: dict[str, np.ndarray]) -> None:
            writer.append({STORE_SITE: acts}, **fields)

        def close() -> None:
            writer.finalize()
    else:
        handle = open(out, "wb")  # noqa: SIM115 - closed in close(), timed as part of the write

        def write(acts: np.ndarray, fields: dict[str, np.ndarray]) -> None:
            for array in (acts, *fields.values()):
                np.save(handle, array)

        def close() -> None:
            if kind == "plain_fsync":
                handle.flush()
                os.fsync(handle.fileno())
            handle.close()

    proc = psutil.Process()
    rng = np.random.default_rng(0)
    n_chunks = -(-rows // chunk_rows)
    marks = {max(1, round(n_chunks * f)): f"{int(f * 100)}%" for f in (0.25, 0.5, 1.0)}
    rss = {"start": proc.memory_info().rss}
    write_s = gen_s = 0.0
    for k in range(n_chunks):
        start = k * chunk_rows
        t0 = time.perf_counter()
        acts, fields = chunk_data(rng, start, min(chunk_rows, rows - start), width)
        t1 = time.perf_counter()
        write(acts, fields)
        write_s += time.perf_counter() - t1
        gen_s += t1 - t0
        del acts, fields
        if k + 1 in marks:
            rss[marks[k + 1]] = proc.memory_info().rss
    t0 = time.perf_counter()
    close()
    close_s = time.perf_counter() - t0
    rss["final"] = proc.memory_info().rss
    return {
        "write_s": write_s + close_s,
        "close_s": close_s,
        "gen_s": gen_s,
        "rss": rss,
        "peak_rss": peak_rss(),
    }


def peak_rss() -> int:
    """This process's peak RSS in bytes. VmHWM, not ru_maxrss: on Linux a child's ru_maxrss
    starts from its parent's RSS at fork, so it would count the models the parent holds."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def run_store_child(kind: str, sizes: Sizes, out: Path) -> dict | None:
    """One store child in a fresh interpreter (so its RSS is the writer's alone); None when
    `workbench.store` is not available yet."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--store-child",
        kind,
        "--rows",
        str(sizes.store_rows),
        "--width",
        str(sizes.store_width),
        "--chunk-rows",
        str(sizes.chunk_rows),
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode == STORE_EXIT_MISSING:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"store child {kind} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def store_section(sizes: Sizes, tmp: Path) -> Section:
    runs: dict[str, list[dict]] = {kind: [] for kind in STORE_KINDS}
    # Untimed warm-up write: on a VM the first write of fresh page-cache memory is many times
    # slower than later ones (first touch of guest memory), which would penalise the first kind.
    warm = tmp / "warmup"
    run_store_child("plain", sizes, warm)
    remove(warm)
    for rep in range(sizes.store_reps):
        for kind in STORE_KINDS[rep % 3 :] + STORE_KINDS[: rep % 3]:
            out = tmp / f"{kind}_{rep}"
            try:
                result = run_store_child(kind, sizes, out)
            finally:
                remove(out)
            if result is None:
                return Section(
                    [Row("store write", "-", "-", "-", "<= 2.0", None)],
                    ["store: skipped, workbench.store has no StoreWriter yet."],
                )
            runs[kind].append(result)

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    secs = {kind: [r["write_s"] for r in runs[kind]] for kind in STORE_KINDS}
    mib = sizes.store_rows * sizes.store_width * 4 / MiB
    worst = max(runs["store"], key=lambda r: r["peak_rss"])
    growth = worst["rss"]["100%"] - worst["rss"]["25%"]
    rows = [
        ratio_row(
            "store: StoreWriter write / np.save to one file",
            secs["store"],
            secs["plain"],
            Target("<=", 2.0, "<= 2.0"),
            unit="s",
            scale=1,
        ),
        ratio_row(
            "store: StoreWriter write / np.save + fsync at close",
            secs["store"],
            secs["plain_fsync"],
            None,
            unit="s",
            scale=1,
        ),
        Row(
            "store: peak RSS of the writer process (baseline: np.save process)",
            f"{worst['peak_rss'] / MiB:.0f} MiB",
            f"{max(r['peak_rss'] for r in runs['plain']) / MiB:.0f} MiB",
            "-",
            "< 1.5 GB",
            worst["peak_rss"] < RSS_LIMIT,
        ),
        Row(
            "store: RSS growth from 25% to 100% of the rows",
            f"{growth / MiB:+.0f} MiB",
            "-",
            "-",
            f"< {RSS_GROWTH_LIMIT // MiB} MiB",
            growth < RSS_GROWTH_LIMIT,
        ),
    ]
    rates = ", ".join(f"{kind} {mib / median(kind, 'write_s'):.0f}" for kind in STORE_KINDS)
    trace = ", ".join(f"{k} {v / MiB:.0f}" for k, v in worst["rss"].items())
    notes = [
        f"store: {sizes.store_rows} rows x {sizes.store_width} float32 = {mib:.0f} MiB in chunks "
        f"of {sizes.chunk_rows} rows, one site plus token_ids/example_index/position (int64); "
        f"each kind in its own process, data generated per chunk (median "
        f"{median('store', 'gen_s'):.1f} s, excluded from the times). Rates MiB/s: {rates}. "
        f"Close/finalize share: store {median('store', 'close_s'):.2f} s (finalize fsyncs "
        f"every shard), np.save+fsync {median('plain_fsync', 'close_s'):.2f} s. "
        f"Writer RSS MiB at start/25%/50%/100%/after finalize: {trace}."
    ]
    return Section(rows, notes)


# ----------------------------------------------------------------------------------- report
def machine() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = re.search(r"^Model name:\s*(.+)$", text, re.M).group(1).strip()
    except (OSError, AttributeError):
        model = platform.processor() or platform.machine()
    import torch

    return (
        f"{model}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def table(rows: list[Row]) -> str:
    head = ("Benchmark", "Ours", "Baseline", "Ratio", "Target", "Met")
    met = {True: "yes", False: "**NO**", None: ""}
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [
        f"| {r.benchmark} | {r.ours} | {r.baseline} | {r.ratio} | {r.target} | {met[r.met]} |"
        for r in rows
    ]
    return "\n".join(lines)


def write_results(mode: str, body: str, bench: str = "bench_core") -> None:
    """Replace (or append) this benchmark's and mode's section of RESULTS.md, between its
    markers."""
    begin, end = f"<!-- {bench}:{mode}:begin -->", f"<!-- {bench}:{mode}:end -->"
    section = f"{begin}\n{body}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else (text.rstrip("\n") + "\n\n" + section + "\n")
    )
    RESULTS.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized smoke run (< 60 s)")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--store-child", choices=STORE_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chunk-rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.store_child:
        print(
            json.dumps(
                store_child(args.store_child, args.rows, args.width, args.chunk_rows, args.out)
            )
        )
        return 0

    sizes = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "full"
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_core_", dir="/tmp"))
    try:
        report = capture_section(sizes, tmp) + store_section(sizes, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    command = "python benchmarks/bench_core.py" + (" --quick" if args.quick else "")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"## bench_core ({mode})\n\n`{command}` on {when}; {machine()}; "
        f"medians of {sizes.reps} interleaved repetitions after {sizes.warmup} warm-up "
        f"(store: {sizes.store_reps} alternating runs each; ± is half the interquartile "
        f"range of the per-round ratios); run took "
        f"{time.perf_counter() - started:.0f} s; 1-min load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other jobs on the "
        f"machine add noise).\n\n{table(report.rows)}\n\n"
        + "\n".join(f"- {note}" for note in report.notes)
    )
    print(body)
    if not args.no_write:
        write_results(mode, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
