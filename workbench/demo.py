"""`workbench demo`: the core pipeline end to end on the real pretrained MiniLM, offline.

Loads all-MiniLM-L6-v2, captures the embedding output and every block's residual stream over
offline technical English (the `text` dataset) into a store, runs the activation-statistics
analysis on every site, and saves the result beside the store for the app.
"""

from __future__ import annotations

from pathlib import Path

from workbench.data import load_dataset
from workbench.models import load_model
from workbench.pipeline import capture_to_store

DEMO_SITES = "hook_embed,blocks.*.hook_resid_post"


def run_demo(out: Path, n_examples: int = 256, device: str = "auto") -> list[str]:
    """Run the demo into `out` (a runs directory); returns the lines to print."""
    from workbench.registry import get_analysis
    from workbench.sources import Source

    handle = load_model("minilm", device=device)
    examples = load_dataset("text", n_examples)
    store = capture_to_store(
        handle, DEMO_SITES, examples, out / "stores" / "minilm-text", dataset="text", max_length=128
    )
    analysis = get_analysis("activation-stats")
    params = analysis.params()
    lines = [
        f"store: {store.path} ({store.n_rows} tokens x {len(store.sites)} sites, "
        f"{store.n_examples} passages)"
    ]
    lines.append(f"{'site':<28}{'mean norm':>11}{'max |a|':>10}{'max/rms':>9}{'top-dim var':>12}")
    for site in store.sites:
        result = analysis.run(Source.from_store(store, site), params)
        result.save(out / "results" / "activation-stats" / "minilm-text" / site)
        h = result.headline
        lines.append(
            f"{site:<28}{h['mean_norm']:>11.2f}{h['max_abs']:>10.2f}{h['max_abs_over_rms']:>9.1f}"
            f"{h['top_dim_variance_share']:>12.3f}"
        )
    lines.append(
        f"next: `workbench info {store.path}`, or `workbench app --runs {out}` and open http://127.0.0.1:8501"
    )
    return lines
