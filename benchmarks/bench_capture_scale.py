"""Capture at research width: a GPT-NeoX of Pythia-410m's shape, >= 1M tokens, one residual
site, into a bfloat16 store. Measures peak RSS against tokens, time per token against the plain
forward pass, and the store's bytes per token.

Run from the repository root::

    python benchmarks/bench_capture_scale.py            # 410m shape, 1,048,576 tokens (long on 2 cores)
    python benchmarks/bench_capture_scale.py --quick    # tiny model, 32,768 tokens: smoke run
    python benchmarks/bench_capture_scale.py --site blocks.3.hook_resid_post --tokens 262144

Model: `GPTNeoXConfig` with Pythia-410m's shape (24 layers, d_model 1024, 16 heads, d_mlp 4096,
vocab 50304, rotary on 25% of each head's dims, base 10000, parallel residual, context 2048),
random weights (seed 0), saved once as a Hugging Face folder under `benchmarks/out/` with a
word-level tokenizer whose 50304 entries are the words of the project's offline `text` dataset
plus filler words; loaded as users load it, `workbench.load_model(folder, device="cpu")`
(TransformerBridge, float32). No download.

Tokens: the `text` dataset's word stream, cycled, cut into texts of `--seq` words (one token per
word, no padding), so `n_texts x seq` tokens are real tokens.

Capture: `workbench.store.capture.capture_to_store(handle, site, texts, store,
store_dtype="bfloat16", batch_size=..., max_length=seq)`, the function behind `workbench
capture`, in a child process of its own (so its RSS is the capture's alone). Inside that child
the module's `capture` call is wrapped: before each batch's real capture the same texts run
through the plain forward pass ended right after the site (`handle.prepare` + the bridge's
forward with a bare raising hook on the site: the same depth, no gathering, casting or storing),
timed apart and subtracted from the wall. So capture and the plain forward alternate batch by
batch, over the very same tokens and batch size, and load from other jobs hits both alike.
RSS (VmRSS, RssAnon) is read after each chunk the store commits; VmHWM at the end.

Then, on a few batches, capture (hooks only, no store) / forward to the site / the full forward
(all layers and the LM head) alternate in rotated order: the full-forward ratio is the product of
the capture-to-store / forward-to-site ratio above and forward-to-site / full forward here.

Prints one table (stdout); copy it into RESULTS.md by hand. The store is deleted afterwards
unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import forward_to  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"

PYTHIA_410M = {"n_layers": 24, "d_model": 1024, "n_heads": 16, "d_mlp": 4096, "vocab": 50304}
TINY = {"n_layers": 4, "d_model": 128, "n_heads": 4, "d_mlp": 512, "vocab": 50304}
MIB = 1 << 20


def status(field: str) -> int:
    """A `/proc/self/status` field in bytes (VmRSS, RssAnon, VmHWM), 0 if absent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def corpus_words() -> list[str]:
    """The `text` dataset (offline technical English) as one word stream."""
    from workbench.data import load_dataset

    return " ".join(e.text for e in load_dataset("text")).split()


def model_folder(shape: dict, root: Path) -> Path:
    """The random-weight GPT-NeoX folder of `shape`, built once (safetensors + tokenizer)."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from workbench.zoo.hf_folder import SPECIAL_TOKENS, save_hf_folder, word_tokenizer

    name = f"neox-{shape['n_layers']}L-d{shape['d_model']}-v{shape['vocab']}"
    folder = root / name
    if (folder / "complete").is_file():
        return folder
    words = list(dict.fromkeys(corpus_words()))
    n_words = shape["vocab"] - len(SPECIAL_TOKENS)
    words = list(dict.fromkeys(words + [f"w{i}" for i in range(n_words)]))[:n_words]
    tokenizer = word_tokenizer(words)
    assert len(tokenizer) == shape["vocab"], len(tokenizer)
    config = GPTNeoXConfig(
        vocab_size=shape["vocab"],
        hidden_size=shape["d_model"],
        num_hidden_layers=shape["n_layers"],
        num_attention_heads=shape["n_heads"],
        intermediate_size=shape["d_mlp"],
        max_position_embeddings=2048,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000,
            "partial_rotary_factor": 0.25,
        },
        use_parallel_residual=True,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    tmp = root / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_hf_folder(GPTNeoXForCausalLM(config), tokenizer, tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    (folder / "complete").write_text("")
    return folder


def make_texts(n_texts: int, seq: int) -> list[str]:
    """`n_texts` texts of exactly `seq` words of the cycled `text` word stream."""
    words = corpus_words()
    need = n_texts * seq
    stream = (words * (need // len(words) + 1))[:need]
    return [" ".join(stream[i * seq : (i + 1) * seq]) for i in range(n_texts)]


def file_params(folder: str | Path) -> int:
    """Parameters in the folder's safetensors weights (the model's own count)."""
    from safetensors import safe_open

    total = 0
    for path in Path(folder).glob("*.safetensors"):
        with safe_open(str(path), framework="np") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                n = 1
                for dim in f.get_slice(key).get_shape():
                    n *= dim
                total += n
    return total


def median(xs: list[float]) -> float:
    ys = sorted(xs)
    mid = len(ys) // 2
    return ys[mid] if len(ys) % 2 else (ys[mid - 1] + ys[mid]) / 2


# ------------------------------------------------------------------------------ the child
def child(args: argparse.Namespace) -> dict:
    import torch

    import workbench.store.capture as store_capture
    import workbench.store.writer as store_writer
    from workbench import load_model
    from workbench.hooks.capture import capture

    rss_start = status("VmRSS")
    t0 = time.perf_counter()
    handle = load_model(args.folder, device="cpu")
    load_s = time.perf_counter() - t0
    texts = make_texts(args.texts, args.seq)
    site = args.site

    # interleave: before each real capture, the plain forward to the site on the same texts
    plain: list[float] = []
    hooked: list[float] = []
    real_capture = store_capture.capture

    def interleaved(h, names, inputs, **kw):
        start = time.perf_counter()
        forward_to(h, h.prepare(inputs, max_length=kw.get("max_length")), site)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        acts = real_capture(h, names, inputs, **kw)
        hooked.append(time.perf_counter() - start)
        return acts

    commits: list[tuple[int, int, int]] = []  # (rows so far, VmRSS, RssAnon) after each chunk
    real_append = store_writer.StoreWriter.append

    def append(self, *a, **kw):
        out = real_append(self, *a, **kw)
        commits.append((self.n_rows, status("VmRSS"), status("RssAnon")))
        return out

    store_capture.capture = interleaved  # type: ignore[assignment]
    store_writer.StoreWriter.append = append  # type: ignore[method-assign]
    rss_loaded, anon_loaded = status("VmRSS"), status("RssAnon")
    out = Path(args.store)
    t0 = time.perf_counter()
    store = store_capture.capture_to_store(
        handle,
        site,
        texts,
        out,
        dataset="text-cycled",
        store_dtype="bfloat16",
        batch_size=args.batch_size,
        max_length=args.seq,
        chunk_rows=args.chunk_rows,
        overwrite=True,
        progress=False,
    )
    wall = time.perf_counter() - t0
    store_capture.capture = real_capture
    store_writer.StoreWriter.append = real_append  # type: ignore[method-assign]
    hwm = status("VmHWM")
    rss_end, anon_end = status("VmRSS"), status("RssAnon")
    n_rows = store.n_rows
    disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    dtype = store.spec["dtype"]

    # check: the stored rows of the first batch equal a fresh bf16 capture of those texts
    first = texts[: args.batch_size]
    fresh = capture(handle, site, first, dtype=torch.bfloat16, max_length=args.seq)
    stored = store.read(site, rows=slice(0, fresh[site].shape[0]))
    assert torch.equal(torch.from_numpy(stored), fresh[site].float()), "stored rows differ"

    # a few batches: capture (no store) / forward to site / full forward, rotated order
    n_sub = max(1, min(args.sub_batches, len(texts) // args.batch_size))
    batches = [texts[i * args.batch_size : (i + 1) * args.batch_size] for i in range(n_sub)]
    fns = {
        "capture": lambda b: capture(handle, site, b, dtype=torch.bfloat16, max_length=args.seq),
        "forward_to": lambda b: forward_to(handle, handle.prepare(b, max_length=args.seq), site),
        "full": lambda b: handle.run(handle.prepare(b, max_length=args.seq)),
    }
    sub: dict[str, list[float]] = {k: [] for k in fns}
    fns["full"](batches[0])  # warm-up
    for r, b in enumerate(batches):
        names = list(fns)
        for name in names[r % 3 :] + names[: r % 3]:
            start = time.perf_counter()
            fns[name](b)
            sub[name].append(time.perf_counter() - start)
    return {
        "n_rows": n_rows,
        "n_texts": len(texts),
        "load_s": load_s,
        "wall_s": wall,
        "plain_s": sum(plain),
        "plain_batches": len(plain),
        "batch_ratios": [c / f for c, f in zip(hooked, plain, strict=True)],
        "hooked_s": sum(hooked),
        "commits": commits,
        "rss_start": rss_start,
        "rss_loaded": rss_loaded,
        "anon_loaded": anon_loaded,
        "rss_end": rss_end,
        "anon_end": anon_end,
        "hwm": hwm,
        "disk_bytes": disk,
        "dtype": dtype,
        "sub": sub,
        "sub_tokens": sum(len(b) for b in batches) * args.seq,
        "n_params": file_params(args.folder),
        "bridge_params": sum(p.numel() for p in handle.model.parameters()),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


# ------------------------------------------------------------------------------- the parent
def at_fraction(commits: list, n_rows: int, frac: float) -> tuple[int, int, int]:
    """The first chunk commit at or past `frac` of the rows."""
    return next(c for c in commits if c[0] >= frac * n_rows)


def report(r: dict, args: argparse.Namespace, shape: dict, load: tuple[float, float]) -> str:
    n = r["n_rows"]
    capture_s = r["wall_s"] - r["plain_s"]
    ratio_to_site = capture_s / r["plain_s"]
    med = median
    sub = r["sub"]
    pairs = lambda a, b: med([x / y for x, y in zip(sub[a], sub[b], strict=True)])  # noqa: E731
    fwd_over_full = pairs("forward_to", "full")
    cap_over_fwd_sub = pairs("capture", "forward_to")
    q1, q2, q4 = (at_fraction(r["commits"], n, f) for f in (0.25, 0.5, 1.0))
    growth = (q4[2] - q1[2]) / MIB
    per_tok = lambda s, k: 1e6 * s / k  # noqa: E731  microseconds per token
    lines = [
        f"bench_capture_scale ({'quick' if args.quick else 'full'}) "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, torch "
        f"{r['torch']} ({r['threads']} threads); GPT-NeoX {shape['n_layers']}L d_model "
        f"{shape['d_model']} {shape['n_heads']} heads d_mlp {shape['d_mlp']} vocab "
        f"{shape['vocab']} ({r['n_params'] / 1e6:.1f}M parameters; the bridge holds "
        f"{r['bridge_params'] / 1e6:.1f}M; float32 on CPU, loaded in "
        f"{r['load_s']:.1f} s); site {args.site}; {r['n_texts']} texts x {args.seq} tokens = "
        f"{n:,} rows, batch {args.batch_size} ({args.batch_size * args.seq} tokens), chunks of "
        f"{args.chunk_rows} rows; store dtype {r['dtype']}; 1-min load {load[0]:.1f} -> "
        f"{load[1]:.1f}",
        "",
        "| Quantity | Value | Target | Met |",
        "|---|---|---|---|",
        f"| capture_to_store, wall minus the interleaved plain forwards | {capture_s:.1f} s "
        f"({per_tok(capture_s, n):.1f} us/token, {n / capture_s:,.0f} tokens/s) | | |",
        f"| plain forward to {args.site}, same {r['plain_batches']} batches, interleaved | "
        f"{r['plain_s']:.1f} s ({per_tok(r['plain_s'], n):.1f} us/token) | | |",
        *(
            [
                f"| - of which capture() calls (forward with hooks, gather, bf16 cast) / the "
                f"rest (chunk buffering, store writes, finalize) | {r['hooked_s']:.1f} s / "
                f"{capture_s - r['hooked_s']:.1f} s | info | |"
            ]
            if "hooked_s" in r
            else []
        ),
        f"| **capture_to_store / plain forward to the same site** | **{ratio_to_site:.3f}** | "
        f"<= 1.3 | {'yes' if ratio_to_site <= 1.3 else '**NO**'} |",
        f"| capture() per batch (hooks, gather, bf16 cast; no store) / the forward to the site "
        f"just before it, median of {len(r['batch_ratios'])} batches | "
        f"{med(r['batch_ratios']):.3f} | info | |",
        f"| the same, {len(sub['full'])} separate batches in rotated order | "
        f"{cap_over_fwd_sub:.3f} | info | |",
        f"| forward to site / full {shape['n_layers']}-layer forward (LM head incl.), "
        f"{len(sub['full'])} batches (median of per-batch ratios) | {fwd_over_full:.3f} "
        f"({per_tok(med(sub['full']), args.batch_size * args.seq):.1f} us/token full) | info | |",
        f"| **capture_to_store / full forward** (product of the two ratios) | "
        f"**{ratio_to_site * fwd_over_full:.3f}** | info | |",
        f"| RssAnon after load / at 25% / 50% / 100% of rows | {r['anon_loaded'] / MIB:.0f} / "
        f"{q1[2] / MIB:.0f} / {q2[2] / MIB:.0f} / {q4[2] / MIB:.0f} MiB | | |",
        f"| **RssAnon growth 25% -> 100% of rows** | **{growth:+.1f} MiB** | < 64 MiB | "
        f"{'yes' if growth < 64 else '**NO**'} |",
        f"| VmRSS at 25% / 100% (incl. file pages) | {q1[1] / MIB:.0f} / {q4[1] / MIB:.0f} MiB "
        f"| info | |",
        f"| peak RSS (VmHWM) of the capture process | {r['hwm'] / MIB:,.0f} MiB "
        f"(weights {r['n_params'] * 4 / MIB:,.0f} MiB) | info | |",
        f"| store on disk | {r['disk_bytes'] / MIB:,.0f} MiB, **{r['disk_bytes'] / n:,.1f} "
        f"bytes/token** ({shape['d_model']} x 2 B bf16 + 3 x 8 B row fields = "
        f"{shape['d_model'] * 2 + 24} B) | info | |",
        "",
        f"- rows checked: the first batch's stored rows equal a fresh bf16 capture of it; "
        f"{len(r['commits'])} chunk commits; RssAnon after each (MiB): "
        f"{[round(c[2] / MIB) for c in r['commits']][:: max(1, len(r['commits']) // 16)]}",
        f"- sub-batch medians (s): capture {med(sub['capture']):.3f}, forward to site "
        f"{med(sub['forward_to']):.3f}, full {med(sub['full']):.3f}",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------- the estimate on paper
#: Pythia (Biderman et al. 2023, Table 1; the Hub model cards): total parameters, layers, d_model.
PYTHIA = {
    "70m": (70_426_624, 6, 512),
    "160m": (162_322_944, 12, 768),
    "410m": (405_334_016, 24, 1024),
    "1b": (1_011_781_632, 16, 2048),
    "1.4b": (1_414_647_808, 24, 2048),
    "2.8b": (2_775_208_960, 32, 2560),
    "6.9b": (6_857_302_016, 32, 4096),
    "12b": (11_846_072_320, 36, 5120),
}
#: step0, 1, 2, 4, ..., 512, then every 1000 to 143000: 154 revisions per size
PYTHIA_STEPS = [0, *(2**i for i in range(10)), *range(1000, 143001, 1000)]


def estimate(
    tokens: int, row_bytes: float, peak_tflops: float, utilisation: float, disk_gbps: float,
    fixed_s: float,
) -> str:  # fmt: skip
    """Markdown table: the Hidden-Dynamics study (every Pythia size x its 154 checkpoints,
    every `blocks.*.hook_resid_post`) at `tokens` tokens per checkpoint, one GPU per capture.

    Per checkpoint: compute 2 x params x tokens FLOPs at `utilisation` of `peak_tflops`; the bf16
    store, n_layers x d_model x 2 B + `row_bytes` (row fields) per token, written at `disk_gbps`
    GB/s, not overlapped with compute; the fp16 weights (2 B per parameter) read from the local
    Hugging Face cache at `disk_gbps`; `fixed_s` for the task's start and the model's build.
    Downloads are not in the GPU-hours (a batch never downloads: the cache is filled first).
    """
    n_ckpt = len(PYTHIA_STEPS)
    rows = [
        "| size | layers x d_model | checkpoints | tokens / checkpoint | TFLOP / checkpoint | "
        "GPU-hours | store GB (all checkpoints) | download GB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tot = {"h": 0.0, "store": 0.0, "down": 0.0, "compute_h": 0.0, "write_h": 0.0, "load_h": 0.0}
    for size, (params, layers, d) in PYTHIA.items():
        flop = 2 * params * tokens
        compute_s = flop / (peak_tflops * 1e12 * utilisation)
        store = tokens * (layers * d * 2 + row_bytes)
        write_s = store / (disk_gbps * 1e9)
        load_s = params * 2 / (disk_gbps * 1e9)
        hours = n_ckpt * (fixed_s + load_s + compute_s + write_s) / 3600
        tot["load_h"] += n_ckpt * load_s / 3600
        down = params * 2 * n_ckpt / 1e9
        tot["h"] += hours
        tot["compute_h"] += n_ckpt * compute_s / 3600
        tot["write_h"] += n_ckpt * write_s / 3600
        tot["store"] += n_ckpt * store / 1e9
        tot["down"] += down
        rows.append(
            f"| pythia-{size} | {layers} x {d} | {n_ckpt} | {tokens:,} | {flop / 1e12:,.0f} | "
            f"{hours:,.1f} | {n_ckpt * store / 1e9:,.0f} | {down:,.0f} |"
        )
    rows.append(
        f"| **total** | | {n_ckpt * len(PYTHIA)} | | | **{tot['h']:,.0f}** (compute "
        f"{tot['compute_h']:,.1f}, store writes {tot['write_h']:,.1f}, weight reads "
        f"{tot['load_h']:,.1f}, fixed "
        f"{n_ckpt * len(PYTHIA) * fixed_s / 3600:,.1f}) | **{tot['store']:,.0f}** | "
        f"**{tot['down']:,.0f}** |"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 32,768 tokens")
    parser.add_argument("--site", default=None, help="default blocks.1.hook_resid_post")
    parser.add_argument("--tokens", type=int, default=None, help="default 1,048,576 (quick 32,768)")
    parser.add_argument("--seq", type=int, default=256, help="tokens per text")
    parser.add_argument("--batch-size", type=int, default=16, help="texts per forward")
    parser.add_argument("--chunk-rows", type=int, default=None, help="default 16384 (quick 4096)")
    parser.add_argument("--sub-batches", type=int, default=None, help="default 4 (quick 3)")
    parser.add_argument("--keep", action="store_true", help="keep the store afterwards")
    parser.add_argument("--out", default=str(OUT), help="model folder and temporary store here")
    parser.add_argument(
        "--estimate", action="store_true", help="print the on-paper Pythia study estimate only"
    )
    parser.add_argument("--row-bytes", type=float, default=24.0, help="estimate: bytes/row fields")
    parser.add_argument("--est-tokens", type=int, default=1 << 20, help="estimate: per checkpoint")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="estimate: H100 bf16")
    parser.add_argument("--utilisation", type=float, default=0.4, help="estimate: of the peak")
    parser.add_argument("--disk-gbps", type=float, default=2.0, help="estimate: store writes")
    parser.add_argument("--fixed-s", type=float, default=30.0, help="estimate: per checkpoint")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.site = args.site or "blocks.1.hook_resid_post"
    args.chunk_rows = args.chunk_rows or (4096 if args.quick else 16384)
    args.sub_batches = args.sub_batches or (3 if args.quick else 4)
    if args.child:
        print("RESULT " + json.dumps(child(args)))
        return 0
    if args.estimate:
        print(
            estimate(
                args.est_tokens, args.row_bytes, args.peak_tflops, args.utilisation,
                args.disk_gbps, args.fixed_s,
            )
        )  # fmt: skip
        return 0
    sys.path.insert(0, str(ROOT))
    tokens = args.tokens or (32768 if args.quick else 1 << 20)
    args.texts = -(-tokens // args.seq)
    shape = TINY if args.quick else PYTHIA_410M
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"building/reusing the model folder under {out}", file=sys.stderr)
    folder = model_folder(shape, out)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix="capture_scale_"))
    load_before = os.getloadavg()[0]
    cmd = [
        sys.executable, __file__, "--child", "--folder", str(folder), "--store",
        str(tmp / "store"), "--texts", str(args.texts), "--seq", str(args.seq), "--batch-size",
        str(args.batch_size), "--chunk-rows", str(args.chunk_rows), "--sub-batches",
        str(args.sub_batches), "--site", args.site,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"capturing {args.texts * args.seq:,} tokens at {args.site}", file=sys.stderr)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return 1
        result = json.loads(lines[-1][7:])
        (out / "capture_scale_last.json").write_text(json.dumps(result, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(result, args, shape, (load_before, os.getloadavg()[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
