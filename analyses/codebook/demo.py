"""The codebook step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """Finetune fsm-lm with a 1000-code, k = 1 codebook at block 1's residual stream (300
    steps) and save it under `out/codebooks/fsm-lm` (kept if already there), for the app's code
    browser. Returns the summary line."""
    import json

    from analyses.codebook.train import TrainConfig, train_codebook_model

    folder = out / "codebooks" / "fsm-lm"
    if not (folder / "codebook.json").is_file():
        cfg = TrainConfig(steps=300, lr=1e-2, trainable="all", replace_every=50)
        train_codebook_model(
            "fsm-lm", "blocks.1.hook_resid_post", n_codes=1000, k=1, cfg=cfg, n_train=500,
            n_eval=100, zoo_root=zoo_root, out=folder,
        )  # fmt: skip
    report = json.loads((folder / "codebook.json").read_text()).get("report", {})
    before = report.get("without_codebooks", {}).get("valid_accuracy")
    after = report.get("with_codebooks", {}).get("valid_accuracy")
    detail = f"valid accuracy {before:.3f} -> {after:.3f} with the codebook; " if before else ""
    return f"codebook on fsm-lm block 1: {detail}saved in {folder}"
