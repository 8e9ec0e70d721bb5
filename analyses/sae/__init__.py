"""Sparse autoencoders: architectures, a trainer over stores or arrays, metrics over
accumulated sums, feature reports, SAELens interop.

    from analyses.sae import TrainConfig, train_sae, load_sae, evaluate
    sae, _ = train_sae(store, "runs/sae/toy", site="blocks.3.hook_resid_post", d_sae=1024, k=32)
    evaluate(sae, store, site="blocks.3.hook_resid_post")["explained_variance"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.lazy import lazy_exports

if TYPE_CHECKING:
    from analyses.sae.base import (
        SAEConfig,
        SparseAutoencoder,
    )
    from analyses.sae.evaluate import (
        accumulate,
        evaluate,
    )
    from analyses.sae.io import (
        load_sae,
        load_saelens,
        save_sae,
        save_saelens,
    )
    from analyses.sae.registry import (
        ARCHITECTURES,
        build_sae,
        create_sae,
        identity_sae,
        make_config,
    )
    from analyses.sae.trainer import (
        TrainConfig,
        read_log,
        train,
        train_sae,
    )

# imported on first use (they import torch), so that `workbench --help` stays fast
_EXPORTS = {
    **dict.fromkeys(["SAEConfig", "SparseAutoencoder"], "analyses.sae.base"),
    **dict.fromkeys(["accumulate", "evaluate"], "analyses.sae.evaluate"),
    **dict.fromkeys(["load_sae", "load_saelens", "save_sae", "save_saelens"], "analyses.sae.io"),
    **dict.fromkeys(
        ["ARCHITECTURES", "build_sae", "create_sae", "identity_sae", "make_config"],
        "analyses.sae.registry",
    ),
    **dict.fromkeys(["TrainConfig", "read_log", "train", "train_sae"], "analyses.sae.trainer"),
}
__all__ = [
    "ARCHITECTURES",
    "SAEConfig",
    "SparseAutoencoder",
    "TrainConfig",
    "accumulate",
    "build_sae",
    "create_sae",
    "evaluate",
    "identity_sae",
    "load_sae",
    "load_saelens",
    "make_config",
    "read_log",
    "save_sae",
    "save_saelens",
    "train",
    "train_sae",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
