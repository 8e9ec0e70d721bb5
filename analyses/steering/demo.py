"""The steering step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """Sweep toy-lm's positive-sentiment direction over every block x 5 coefficients with a
    random control; saves the result under `out/results/steering-sweep/` and the vectors under
    `out/vectors/` (kept if already there). Returns the summary line."""
    from analyses.steering.recipes import lm_sweep
    from workbench import zoo
    from workbench.analysis.results import Result
    from workbench.sites.names import expand_sites

    target = out / "results" / "steering-sweep" / "toy-lm" / "positive-sentiment"
    try:
        result = Result.load(target)
    except Exception:  # missing or unreadable: (re)compute
        series = zoo.load_series("toy-lm", zoo_root)
        handle = series.load(series.steps[-1], device=device)
        sites = expand_sites(handle.sites(), "blocks.*.hook_resid_pre")
        result, vectors = lm_sweep(
            handle, sites, "sentiment", 1, n_prompts=12, controls=1, max_new_tokens=6
        )
        for site, vector in vectors.items():
            vector.save(out / "vectors" / "toy-lm" / "positive-sentiment" / f"{site}.safetensors")
        result.save(target)
    from analyses.steering.report import best_site

    verdict = best_site(result.headline["effect_at_max_coeff"])
    return f"steering toy-lm positive sentiment (target-minus-opposite mass): {verdict.sentence}"
