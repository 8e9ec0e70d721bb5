"""Architectures by name: config class + module class (one file each)."""

from __future__ import annotations

from typing import Any

from analyses.sae.base import SAEConfig, SparseAutoencoder
from analyses.sae.batchtopk import BatchTopKConfig, BatchTopKSAE
from analyses.sae.jumprelu import JumpReLUConfig, JumpReLUSAE
from analyses.sae.relu import ReLUConfig, ReLUSAE
from analyses.sae.topk import TopKConfig, TopKSAE
from workbench.errors import InputError

ARCHITECTURES: dict[str, tuple[type[SAEConfig], type[SparseAutoencoder]]] = {
    "relu": (ReLUConfig, ReLUSAE),
    "topk": (TopKConfig, TopKSAE),
    "batchtopk": (BatchTopKConfig, BatchTopKSAE),
    "jumprelu": (JumpReLUConfig, JumpReLUSAE),
}


def get_architecture(name: str) -> tuple[type[SAEConfig], type[SparseAutoencoder]]:
    if name not in ARCHITECTURES:
        raise InputError(f"unknown SAE architecture {name!r}; valid: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def make_config(architecture: str, **settings: Any) -> SAEConfig:
    """The frozen config of `architecture` from keyword settings (unknown keys name the valid
    ones)."""
    import dataclasses

    config_cls, _ = get_architecture(architecture)
    valid = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(settings) - valid)
    if unknown:
        raise InputError(
            f"{architecture} SAE has no setting {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
        )
    return config_cls(**settings)


def build_sae(config: SAEConfig) -> SparseAutoencoder:
    """A freshly initialised SAE of `config`'s architecture."""
    _, module_cls = get_architecture(config.architecture)
    return module_cls(config)


def create_sae(architecture: str, **settings: Any) -> SparseAutoencoder:
    """`build_sae(make_config(architecture, **settings))`."""
    return build_sae(make_config(architecture, **settings))


def identity_sae(d_in: int) -> SparseAutoencoder:
    """A ReLU SAE with known latents: W_enc = [I, -I], W_dec = [I; -I], zero biases, so latent j
    is relu(x_j), latent d + j is relu(-x_j), and x_hat = relu(x) - relu(-x) = x exactly (d_sae
    = 2 d_in). Planted ground truth for feature statistics, pages and reconstruction metrics."""
    import torch

    sae = create_sae("relu", d_in=d_in, d_sae=2 * d_in)
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()
