"""Save and load SAEs: our format (safetensors + JSON config) and SAELens's.

Ours, a directory with
- `sae.safetensors`: W_enc (d_in, d_sae), b_enc (d_sae,), W_dec (d_sae, d_in), b_dec (d_in,)
  float32, plus architecture state (BatchTopK: `threshold`);
- `config.json`: {"format": "workbench-sae", "format_version", "architecture", "config" (the
  frozen config's fields), "meta" (site, model, store, training settings, input scale folded)}.
The weights are written first and the config last, each atomically, so a directory with a
config is a complete SAE.

SAELens's (`SAE.save_model` / `load_from_disk`, sae-lens 6.x), a directory with
- `sae_weights.safetensors`: the same four tensor names and shapes (JumpReLU adds `threshold`);
- `cfg.json`: architecture ("standard", "topk", "jumprelu", ...), d_in, d_sae, dtype, device,
  apply_b_dec_to_input, normalize_activations, reshape_activations, k (topk) and a metadata
  object (model_name, hook_name, ...; written as "metadata", read from "metadata", "meta" or
  the top level as older versions wrote it).
SAELens "standard" maps to our "relu" (decoder_norm "weighted", SAELens's training penalty),
"topk" to "topk", "jumprelu" to "jumprelu" (`analyses.sae.jumprelu`: the per-latent
`threshold`; an older checkpoint's `log_threshold` is read as threshold = exp(log_threshold), as
SAELens's loader does). Our "batchtopk" is written as "jumprelu" with its threshold (how SAELens
itself saves a BatchTopK SAE), so it loads back as a JumpReLU SAE with the same outputs. SAEs
whose inputs need apply_b_dec_to_input = false or a run-time
normalisation are refused with the setting named: our modules do not implement those.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from analyses.sae.base import SparseAutoencoder
from analyses.sae.registry import build_sae, make_config
from workbench.errors import InputError

FORMAT = "workbench-sae"
FORMAT_VERSION = 1
WEIGHTS = "sae.safetensors"
CONFIG = "config.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
SAELENS_CONFIG = "cfg.json"
REQUIRED = ("W_enc", "b_enc", "W_dec", "b_dec")

_TO_SAELENS = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "jumprelu"}
_FROM_SAELENS = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(payload, fh, indent=2, default=str)

    _atomic_write(path, write)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    plain = {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous()
        for k, v in tensors.items()
    }
    _atomic_write(path, lambda tmp: save_file(plain, tmp))


def state_tensors(sae: SparseAutoencoder) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint holds: the four weights and any architecture state."""
    return {
        "W_enc": sae.W_enc,
        "b_enc": sae.b_enc,
        "W_dec": sae.W_dec,
        "b_dec": sae.b_dec,
        **sae.extra_state(),
    }


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise InputError(f"{path} does not exist")
    return load_file(str(path))


def _assign(sae: SparseAutoencoder, tensors: dict[str, torch.Tensor], origin: str) -> None:
    wanted = state_tensors(sae)
    missing = [k for k in wanted if k not in tensors]
    if missing:
        raise InputError(
            f"{origin} lacks tensors {', '.join(missing)} (it has {', '.join(sorted(tensors))}); "
            f"a {sae.config.architecture} SAE needs {', '.join(wanted)}"
        )
    with torch.no_grad():
        for name, target in wanted.items():
            value = tensors[name]
            if tuple(value.shape) != tuple(target.shape):
                raise InputError(
                    f"{origin}: tensor {name} has shape {tuple(value.shape)}, expected "
                    f"{tuple(target.shape)} for d_in = {sae.d_in}, d_sae = {sae.d_sae}"
                )
            target.copy_(value.to(target.dtype))


def save_sae(
    sae: SparseAutoencoder, directory: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """Write `sae` to `directory` in our format (module docstring); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write_tensors(directory / WEIGHTS, state_tensors(sae))
    config = sae.config.to_dict()
    architecture = config.pop("architecture")
    _write_json(
        directory / CONFIG,
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": architecture,
            "config": config,
            "meta": meta or {},
        },
    )
    return directory


def is_saelens_dir(directory: str | Path) -> bool:
    directory = Path(directory)
    return (directory / SAELENS_CONFIG).is_file() and not (directory / CONFIG).is_file()


def load_sae(directory: str | Path) -> tuple[SparseAutoencoder, dict[str, Any]]:
    """(sae in eval mode, meta) from our format or SAELens's (detected by its cfg.json)."""
    directory = Path(directory)
    if is_saelens_dir(directory):
        return load_saelens(directory)
    path = directory / CONFIG
    if not path.is_file():
        raise InputError(
            f"{str(directory)!r} holds no SAE: expected {CONFIG} + {WEIGHTS} (ours) or "
            f"{SAELENS_CONFIG} + {SAELENS_WEIGHTS} (SAELens)"
        )
    payload = json.loads(path.read_text())
    if payload.get("format") != FORMAT:
        raise InputError(f"{path} is not a workbench SAE config (format {payload.get('format')!r})")
    sae = build_sae(make_config(payload["architecture"], **payload["config"]))
    _assign(sae, _load_tensors(directory / WEIGHTS), str(directory / WEIGHTS))
    return sae.eval(), payload.get("meta", {})


def save_saelens(
    sae: SparseAutoencoder, directory: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """Write `sae` in SAELens's format (cfg.json + sae_weights.safetensors)."""
    meta = meta or {}
    architecture = sae.config.architecture
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = state_tensors(sae)
    cfg: dict[str, Any] = {
        "architecture": _TO_SAELENS[architecture],
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "model_name": meta.get("model"),
            "hook_name": meta.get("site"),
            "dataset_path": meta.get("dataset"),
        },
    }
    if architecture == "topk":
        cfg["k"] = sae.config.k  # type: ignore[attr-defined]
    _write_tensors(directory / SAELENS_WEIGHTS, tensors)
    _write_json(directory / SAELENS_CONFIG, cfg)
    return directory


def load_saelens(directory: str | Path) -> tuple[SparseAutoencoder, dict[str, Any]]:
    """(sae in eval mode, meta) from a SAELens directory; a missing key or tensor is named."""
    directory = Path(directory)
    cfg_path = directory / SAELENS_CONFIG
    if not cfg_path.is_file():
        raise InputError(f"{str(directory)!r} has no {SAELENS_CONFIG}")
    cfg = json.loads(cfg_path.read_text())
    missing = [k for k in ("architecture", "d_in", "d_sae") if k not in cfg]
    if missing:
        raise InputError(f"{cfg_path} lacks keys {', '.join(missing)}")
    foreign = cfg["architecture"]
    ours = _FROM_SAELENS
    if foreign not in ours:
        raise InputError(
            f"{cfg_path}: SAELens architecture {foreign!r} is not supported; valid: "
            f"{', '.join(ours)}"
        )
    if not cfg.get("apply_b_dec_to_input", True):
        raise InputError(f"{cfg_path}: apply_b_dec_to_input = false is not supported")
    norm = cfg.get("normalize_activations", "none")
    if norm not in ("none", None):
        raise InputError(
            f"{cfg_path}: normalize_activations = {norm!r} is not supported (only 'none'; fold "
            "the scaling factor into the weights first)"
        )
    settings: dict[str, Any] = {"d_in": int(cfg["d_in"]), "d_sae": int(cfg["d_sae"])}
    if foreign == "topk":
        if "k" not in cfg:
            raise InputError(f"{cfg_path} lacks key k (a topk SAE needs it)")
        settings["k"] = int(cfg["k"])
    sae = build_sae(make_config(ours[foreign], **settings))
    tensors = _load_tensors(directory / SAELENS_WEIGHTS)
    if foreign == "jumprelu" and "threshold" not in tensors and "log_threshold" in tensors:
        tensors["threshold"] = tensors.pop("log_threshold").exp()  # SAELens < 6 trained log theta
    _assign(sae, tensors, str(directory / SAELENS_WEIGHTS))
    metadata = cfg.get("metadata") or cfg.get("meta") or cfg
    meta = {
        "model": metadata.get("model_name"),
        "site": metadata.get("hook_name"),
        "dataset": metadata.get("dataset_path"),
        "format": "saelens",
    }
    return sae.eval(), meta


def sae_origin(meta: dict[str, Any]) -> dict[str, str | None]:
    """{"site", "model", "store"} an SAE was trained on, from its saved meta (`load_sae`): the
    CLI's `--store` meta or the trainer's `source` record; None where it is not recorded (an
    SAE trained on an array). "model" is the store's model spec (a zoo name like
    `toy-lm@1000`)."""
    source = meta.get("source") or {}
    spec = source.get("spec") or {}
    return {
        "site": meta.get("site") or source.get("site"),
        "model": meta.get("model") or spec.get("model"),
        "store": meta.get("store") or source.get("store"),
    }
