"""Steering benchmarks on the zoo's toy-lm: the cost of steering during generation, and what
batching the coefficients of a sweep saves.

Run from the repository root::

    python benchmarks/bench_steering.py            # full sizes (about a minute)
    python benchmarks/bench_steering.py --quick    # smoke

Rows:
- steered greedy generation (one `Add` at blocks.2.hook_resid_pre, after the prompt, KV cache)
  vs plain generation of the same prompts: target overhead ratio <= 1.05;
- the same with the cache off (every step recomputes the prefix; info);
- a 5-coefficient behaviour sweep run as one batched pass (`measure.lm_behaviour` with all
  coefficients) vs one call per coefficient (info: the speed-up batching buys).
Times are medians of interleaved repetitions (see bench_core.time_interleaved).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_core import Section, Target, machine, ratio_row, table, time_interleaved, write_results

SITE = "blocks.2.hook_resid_pre"
COEFFS = (-8.0, -4.0, 0.0, 4.0, 8.0)


def run(quick: bool) -> Section:
    from analyses.steering import extract, generate, measure, recipes
    from workbench import zoo
    from workbench.data import load_dataset

    series = zoo.load_series("toy-lm")
    handle = series.load(series.steps[-1], device="cpu")
    n_prompts, new_tokens, reps = (8, 8, 3) if quick else (32, 24, 9)
    prompts = [" ".join(e.text.split()[:3]) for e in load_dataset("grammar-lm", n_prompts, 7)]
    positive, negative = recipes.contrast_inputs("grammar-lm", "sentiment", 1, 0, 200)
    vector = extract.mean_difference(handle, positive, negative, SITE, read="mean")
    rows = []
    for cache in (True, False):
        times = time_interleaved(
            {
                "plain": lambda c=cache: generate(
                    handle, prompts, None, max_new_tokens=new_tokens, use_cache=c
                ),
                "steered": lambda c=cache: generate(
                    handle, prompts, vector, 4.0, max_new_tokens=new_tokens, use_cache=c
                ),
            },
            reps=reps,
            warmup=1,
        )
        label = "KV cache" if cache else "no cache"
        target = Target("<=", 1.05, "<= 1.05") if cache else None
        rows.append(
            ratio_row(
                f"steered / plain generation ({label}; {n_prompts} prompts x {new_tokens} tokens)",
                times["steered"],
                times["plain"],
                target,
            )
        )
    target_ids = recipes.token_ids(handle, recipes.grammar_targets("sentiment", 1)[0])
    sweep_times = time_interleaved(
        {
            "batched": lambda: measure.lm_behaviour(handle, vector, COEFFS, prompts, target_ids),
            "loop": lambda: [
                measure.lm_behaviour(handle, vector, [c], prompts, target_ids) for c in COEFFS
            ],
        },
        reps=max(3, reps // 3),
        warmup=1,
    )
    rows.append(
        ratio_row(
            f"sweep of {len(COEFFS)} coefficients: one batched pass vs one call each (speed-up)",
            sweep_times["batched"],
            sweep_times["loop"],
            None,
            inverse=True,
        )
    )
    notes = [
        f"toy-lm (GPT-NeoX, {handle.model.cfg.n_layers} layers, d_model "
        f"{handle.model.cfg.d_model}) on CPU; vector: diff-in-means of grammar-lm sentiment."
    ]
    return Section(rows, notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    section = run(args.quick)
    mode = "quick" if args.quick else "full"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(
        [
            f"## Steering ({mode}), {stamp}",
            "",
            f"Machine: {machine()}.",
            "",
            table(section.rows),
            "",
            *[f"- {note}" for note in section.notes],
        ]
    )
    print(body)
    if not args.no_write:
        write_results(mode, body, bench="bench_steering")
    return 0 if all(row.met is not False for row in section.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
