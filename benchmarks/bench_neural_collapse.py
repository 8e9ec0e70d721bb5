"""Neural-collapse benchmark: streaming NC over a 1M x 384 store vs a straightforward in-memory
two-pass implementation, memory at two N, and the vectorised nearest-class-mean vs a per-row loop.

Run from the repository root::

    python benchmarks/bench_neural_collapse.py            # 1M x 384 (about 2 minutes)
    python benchmarks/bench_neural_collapse.py --quick    # 256k x 384 smoke run

Each measurement runs in its own process; memory is its peak RSS (ru_maxrss, which includes
the store's memory-mapped file pages it touched) and its peak anonymous RSS (heap; sampled):

- `stream`: `analyses.neural_collapse.analyses.run` on the store (one pass for NC1-NC3 accumulating
  class means and the within-class scatter, a second streamed pass for NC4), at N/4 and N rows;
- `naive`: the whole site read into memory, class means (pass 1), Sigma_W from the centred
  rows per class (pass 2), pinv of the d x d Sigma_B, NC4 with the vectorised NCC (the
  two-pass shape of the reference Colab, minus its per-row loop);
- NCC: the Colab's per-row Python loop on 20k rows vs the vectorised argmin on the same rows.

Prints a Markdown table (recorded in RESULTS.md by hand). Stores go to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
D, C, CHUNK = 384, 10, 65536


def write_store(path: Path, n: int) -> None:
    """n x D float32 features: class means on a random ETF-like frame, unit noise; labels as an
    example label (one row per example)."""
    from workbench.store import StoreWriter

    rng = np.random.default_rng(0)
    means = rng.normal(size=(C, D)).astype(np.float32) * 0.5
    writer = StoreWriter(path, {"bench": "neural-collapse", "n": n})
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        y = rng.integers(0, C, stop - start)
        x = means[y] + rng.standard_normal((stop - start, D), dtype=np.float32)
        writer.append(
            {"h": x},
            token_ids=None,
            example_index=np.arange(start, stop),
            position=None,
            example_labels={"y": y},
        )
    writer.finalize()
    np.save(path / "classifier.npy", np.hstack([means, np.zeros((C, 1), np.float32)]))


def child_stream(store_path: str) -> dict:
    from analyses.neural_collapse.analyses import Params, run
    from workbench.analysis.sources import Source
    from workbench.store import ActivationStore

    store = ActivationStore(store_path)
    source = Source.from_store(store, "h", "y")
    source.weights = np.load(Path(store_path) / "classifier.npy")
    started = time.perf_counter()
    out = run(source, Params()).headline
    return {"seconds": time.perf_counter() - started, "nc1": out["nc1"], "nc4": out["nc4"]}


def child_naive(store_path: str) -> dict:
    from workbench.store import ActivationStore

    store = ActivationStore(store_path)
    started = time.perf_counter()
    h = store.read("h")
    y = store.example_labels()["y"][store.example_index()]
    wb = np.load(Path(store_path) / "classifier.npy").astype(np.float64)
    means = np.stack([h[y == k].mean(0, dtype=np.float64) for k in range(C)])  # pass 1
    m = means - means.mean(0)
    sw = np.zeros((D, D))
    for k in range(C):  # pass 2
        centred = h[y == k] - means[k]
        sw += centred.T @ centred
    sw /= len(h)
    sb = m.T @ m / C
    nc1 = float(np.trace(sw @ np.linalg.pinv(sb)) / C)
    net = np.argmax(h @ wb[:, :D].T + wb[:, D], axis=1)
    ncc = np.argmin((means**2).sum(1) - 2 * h @ means.T, axis=1)
    return {"seconds": time.perf_counter() - started, "nc1": nc1, "nc4": float(np.mean(net != ncc))}


def child_ncc(store_path: str) -> dict:
    from analyses.neural_collapse.analyses import nearest_class_mean
    from workbench.store import ActivationStore

    h = ActivationStore(store_path).read("h", slice(0, 20000)).astype(np.float64)
    means = np.random.default_rng(1).normal(size=(C, D))
    started = time.perf_counter()
    loop = [int(np.argmin([np.linalg.norm(row - mu) for mu in means])) for row in h]
    looped = time.perf_counter() - started
    started = time.perf_counter()
    fast = nearest_class_mean(h, means)
    vectorised = time.perf_counter() - started
    assert fast.tolist() == loop
    return {"loop": looped, "vectorised": vectorised}


def sample_anon_rss(peak: list[float], stop: threading.Event) -> None:
    """Keep peak[0] = the largest RssAnon (MiB) seen every 5 ms: heap memory, without the
    file-backed pages of the store's memory maps, which ru_maxrss also counts."""
    while not stop.wait(0.005):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                peak[0] = max(peak[0], int(line.split()[1]) / 1024)


def run_child(kind: str, store_path: str) -> dict:
    peak, stop = [0.0], threading.Event()
    sampler = threading.Thread(target=sample_anon_rss, args=(peak, stop), daemon=True)
    sampler.start()
    out = globals()[f"child_{kind}"](store_path)
    stop.set()
    sampler.join()
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["anon_mib"] = peak[0]
    return out


def spawn(kind: str, store_path: Path) -> dict:
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
        "import benchmarks.bench_neural_collapse as b; "
        f"print(json.dumps(b.run_child({kind!r}, {str(store_path)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", help="folder for the stores (default: a temporary one)")
    args = parser.parse_args()
    n = (1 << 18) if args.quick else 1_000_000
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench-nc-", dir=HERE / "out"))
    folder.mkdir(parents=True, exist_ok=True)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    sizes = {"quarter": n // 4, "full": n}
    for name, rows in sizes.items():
        if not (folder / name / "manifest.json").is_file():
            write_store(folder / name, rows)
    stream = {name: spawn("stream", folder / name) for name in sizes}
    naive = spawn("naive", folder / "full")
    ncc = spawn("ncc", folder / "full")
    load_after = Path("/proc/loadavg").read_text().split()[0]
    full = stream["full"]
    print(f"N = {n:,} x {D} float32, C = {C}; 1-min load {load_before} before, {load_after} after")
    print("| Measurement | Ours | Baseline | Ratio |")
    print("|---|---|---|---|")
    print(
        f"| NC1-NC4 time, streamed store vs in-memory two-pass | {full['seconds']:.2f} s | "
        f"{naive['seconds']:.2f} s | {full['seconds'] / naive['seconds']:.2f} |"
    )
    print(
        f"| peak RSS, streamed vs in-memory | {full['rss_mib']:.0f} MiB | "
        f"{naive['rss_mib']:.0f} MiB | {full['rss_mib'] / naive['rss_mib']:.2f} |"
    )
    print(
        f"| peak anonymous RSS (heap), streamed vs in-memory | {full['anon_mib']:.0f} MiB | "
        f"{naive['anon_mib']:.0f} MiB | {full['anon_mib'] / naive['anon_mib']:.2f} |"
    )
    quarter = stream["quarter"]
    print(
        f"| streamed peak anonymous RSS at N/4 vs N | {quarter['anon_mib']:.0f} MiB | "
        f"{full['anon_mib']:.0f} MiB | +{full['anon_mib'] - quarter['anon_mib']:.0f} MiB |"
    )
    print(
        f"| streamed peak RSS (incl. mapped store pages) at N/4 vs N | "
        f"{quarter['rss_mib']:.0f} MiB | {full['rss_mib']:.0f} MiB | "
        f"+{full['rss_mib'] - quarter['rss_mib']:.0f} MiB |"
    )
    print(
        f"| NCC on 20k x {D}: vectorised vs per-row loop | {ncc['vectorised'] * 1e3:.1f} ms | "
        f"{ncc['loop'] * 1e3:.0f} ms | {ncc['loop'] / ncc['vectorised']:.0f}x faster |"
    )
    print(
        f"| agreement: NC1 streamed vs in-memory | {full['nc1']:.6f} | {naive['nc1']:.6f} | "
        f"rel diff {abs(full['nc1'] - naive['nc1']) / naive['nc1']:.1e} |"
    )
    print(f"| agreement: NC4 | {full['nc4']:.6f} | {naive['nc4']:.6f} | |")


if __name__ == "__main__":
    main()
