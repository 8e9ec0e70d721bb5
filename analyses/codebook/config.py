"""Training settings of codebook models (`TrainConfig`), without torch, so that the command
line can show the defaults without importing the trainer (`analyses.codebook.train`)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.errors import InputError

#: real tokens of training examples (the first examples that hold this many, or all) whose
#: activations initialise the codes (`init_codes_from_data`)
INIT_TOKENS = 32768
#: codes per group and training examples of `workbench codebook train` (and the demo): fsm-lm
#: (100 states) reaches purity >= 0.9 at block 0 from about 4000 codes (0.911; 0.964 with 8000;
#: benchmarks/RESULTS.md)
N_CODES = 8000
N_TRAIN = 1000
#: what trains: the codes alone; the codes and the codebooks' LayerNorms; or those and the model
TRAINABLE = ("codes", "codebooks", "all")


@dataclass(frozen=True)
class TrainConfig:
    """Finetuning settings.

    trainable: "codes" (the codes only; the LayerNorm keeps the scale `init` gave it and the
        model is frozen), "codebooks" (codes + LayerNorm) or "all" (and the model).
    init: "data" (each LayerNorm matched to the site's scale, codes = random normalised
        activations refined by `kmeans_iters` Lloyd steps) or "random" (N(0, 1) codes, unit
        LayerNorm: the reference's default).
    replace_every: steps between dead-code replacements (0 = never, the reference's default).
    divergence_factor: stop when the smoothed loss exceeds this many times its lowest value.
    """

    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    model_lr: float = 1e-4
    recon_coeff: float = 1.0
    trainable: str = "codes"
    init: str = "data"
    kmeans_iters: int = 10
    replace_every: int = 100
    seed: int = 0
    divergence_factor: float = 5.0

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE:
            raise InputError(f"trainable must be one of {TRAINABLE}, got {self.trainable!r}")
        if self.init not in ("data", "random"):
            raise InputError(f"init must be 'data' or 'random', got {self.init!r}")
        if self.steps < 0 or self.batch_size < 1 or self.kmeans_iters < 0:
            raise InputError(
                f"need steps >= 0, batch_size >= 1 and kmeans_iters >= 0, got {self.steps}, "
                f"{self.batch_size}, {self.kmeans_iters}"
            )
        if not (self.lr > 0 and self.model_lr > 0):
            raise InputError(
                f"learning rates must be > 0, got lr={self.lr}, model_lr={self.model_lr}"
            )
        if not self.divergence_factor > 1:
            raise InputError(f"divergence_factor must be > 1, got {self.divergence_factor}")


__all__ = ["INIT_TOKENS", "N_CODES", "N_TRAIN", "TRAINABLE", "TrainConfig"]
