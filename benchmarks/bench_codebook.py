"""Codebook features benchmark: forward pass with a codebook at every layer vs without.

Run from the repository root::

    python benchmarks/bench_codebook.py            # toy-lm, 32 texts x 64 tokens, 15 reps
    python benchmarks/bench_codebook.py --quick    # smoke (< 60 s)

Prints one table: median forward time of the zoo's toy-lm (4 layers, d_model 128, CPU, fp32)
without codebooks and with a `CodebookLayer` (k = 8, the reference default) spliced into every
`blocks.*.hook_resid_post` through `intervene`, at codebook sizes 1k and 10k, and the overhead
ratio. Snapping is one (tokens, d) x (d, n_codes) matmul + one top-k per layer per batch.
Variants run interleaved (round robin) so drift on a busy machine hits all alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="toy-lm")
    args = parser.parse_args()
    from analyses.codebook.model import Codebooks, encode_examples, load_base_model
    from workbench.data import load_dataset
    from workbench.zoo import recipes

    n_texts, reps = (8, 3) if args.quick else (32, 15)
    handle = load_base_model(args.model)
    examples = load_dataset(recipes()[args.model].dataset, n_texts, seed=1)
    ids, mask = encode_examples(handle, examples)
    books = {
        n: Codebooks.for_handle(handle, "blocks.*.hook_resid_post", n_codes=n, k=8).eval()
        for n in (1000, 10000)
    }

    def forward(n: int | None) -> float:
        started = time.perf_counter()
        with torch.no_grad():
            if n is None:
                handle.model(ids, attention_mask=mask)
            else:
                with books[n].insert(handle):
                    handle.model(ids, attention_mask=mask)
        return time.perf_counter() - started

    variants: list[int | None] = [None, 1000, 10000]
    times: dict[int | None, list[float]] = {v: [] for v in variants}
    for v in variants:  # warm-up
        forward(v)
    for rep in range(reps):
        for v in variants[rep % 3 :] + variants[: rep % 3]:
            times[v].append(forward(v))
    base = statistics.median(times[None])
    n_tokens = int(mask.sum())
    print(f"{args.model}: {len(books[1000].sites)} codebooks (k=8), batch {tuple(ids.shape)} "
          f"({n_tokens} tokens), {reps} reps, torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"{'variant':<24}{'median ms':>12}{'ratio':>10}")
    print(f"{'no codebooks':<24}{base * 1e3:>12.2f}{1.0:>10.2f}")
    for n in (1000, 10000):
        med = statistics.median(times[n])
        print(f"{f'codebooks, {n} codes':<24}{med * 1e3:>12.2f}{med / base:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
