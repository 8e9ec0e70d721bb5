"""End to end on the zoo's fsm-lm: a codebook trained with the CLI's defaults at the last
residual stream, codes match hidden states (purity), and forcing a state's code steers
next-token predictions."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from analyses.codebook.analysis import (
    code_statistics,
    code_usage,
    collect_codes,
    fsm_state_labels,
    purity,
)
from analyses.codebook.model import encode_examples, load_codebook_model
from analyses.codebook.steer import fsm_state_forcing
from workbench.data import fsm, load_dataset

SITE = "blocks.1.hook_resid_post"
#: the issue-22 target for the CLI's defaults (`test_codebook_defaults.py` measures it too)
MIN_PURITY = 0.9


@pytest.mark.slow
def test_fsm_codes_are_states_and_forcing_steers(fsm_defaults) -> None:
    started = time.perf_counter()
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is faster on a shared CPU
    try:
        _run(fsm_defaults(1) / "cb", started)
    finally:
        torch.set_num_threads(threads)


def _run(folder, started: float) -> None:
    handle, books = load_codebook_model(folder)
    report = books.report
    # modest degradation: above the trigram baseline (0.755), below the model without codebooks
    assert report["without_codebooks"]["valid_accuracy"] > 0.9
    assert 0.755 < report["with_codebooks"]["valid_accuracy"] <= 1.0
    # the report's most used codes are those of the held-out examples, saved with the codebook
    eval_ids, eval_mask = encode_examples(handle, load_dataset("fsm", 100, seed=1))
    usage = code_usage(collect_codes(handle, books, eval_ids, eval_mask)[SITE], books.n_codes)
    top = report["top_codes"][SITE]
    assert len(top) == 8 and [c for c, _ in top] == list(np.argsort(-usage, kind="stable")[:8])
    assert [u for _, u in top] == pytest.approx(usage[[c for c, _ in top]], abs=1e-6)
    saved = json.loads((folder / "codebook.json").read_text())
    assert saved["report"]["top_codes"][SITE] == top

    ref = fsm.generate(500, 2)  # codes -> states on walks of a third seed
    ids, mask = encode_examples(handle, ref)
    codes = collect_codes(handle, books, ids, mask)[SITE]
    table = purity(codes, fsm_state_labels(ref), books.n_codes)
    assert len(table) >= 90  # nearly every state occurs
    assert table.precision.mean() >= MIN_PURITY, table.precision.mean()
    stats = code_statistics({SITE: codes}, books.n_codes)
    assert 0 < stats.active_codes[0] <= books.n_codes

    state_codes = dict(zip(table.label, table.code, strict=True))
    steer = fsm_state_forcing(
        handle, books, SITE, state_codes, fsm.generate(200, 1), n_per_state=16
    )
    assert steer["forced_target_legal"] > 0.7
    assert steer["forced_target_legal"] > 3 * steer["chance_legal"]
    assert steer["forced_target_legal"] > steer["plain_target_legal"] + 0.4
    assert steer["forced_original_legal"] < steer["plain_original_legal"]
    print(
        f"purity {table.precision.mean():.3f} recall {table.recall.mean():.3f} {steer} "
        f"{report['with_codebooks']} {report['without_codebooks']} {time.perf_counter() - started:.0f}s"
    )
