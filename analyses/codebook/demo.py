"""The codebook step of `workbench demo` (entry-point group `workbench.demo`)."""

from __future__ import annotations

from pathlib import Path


def demo_step(out: Path, zoo_root: Path | None, device: str) -> str:
    """Train a codebook at fsm-lm's block-1 residual stream with the settings of
    `workbench codebook train`'s defaults and save it under `out/codebooks/fsm-lm` (kept if
    already there with these settings; retrained otherwise), for the app's code browser.
    Returns the summary line."""
    import json
    import shutil
    from dataclasses import asdict

    from analyses.codebook.config import N_CODES, N_TRAIN, TrainConfig
    from analyses.codebook.train import train_codebook_model
    from workbench import console

    folder = out / "codebooks" / "fsm-lm"
    saved = folder / "codebook.json"
    wanted = {"train": asdict(TrainConfig()), "n_train": N_TRAIN, "n_codes": N_CODES}
    if saved.is_file():
        config = json.loads(saved.read_text())
        report = config.get("report", {})
        found = {"train": report.get("train"), "n_train": report.get("n_train"),
                 "n_codes": config["n_codes"]}  # fmt: skip
        if found != wanted:  # trained with older defaults: retrained
            console.log(f"{folder}: trained with other settings; retraining")
            shutil.rmtree(folder)
    if not saved.is_file():
        train_codebook_model(
            "fsm-lm", "blocks.1.hook_resid_post", n_codes=N_CODES, k=1, cfg=TrainConfig(),
            n_train=N_TRAIN, n_eval=100, zoo_root=zoo_root, out=folder,
        )  # fmt: skip
    report = json.loads((folder / "codebook.json").read_text()).get("report", {})
    before = report.get("without_codebooks", {}).get("valid_accuracy")
    after = report.get("with_codebooks", {}).get("valid_accuracy")
    detail = f"valid accuracy {before:.3f} -> {after:.3f} with the codebook; " if before else ""
    return f"codebook on fsm-lm block 1: {detail}saved in {folder}"
