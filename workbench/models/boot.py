"""Booting one model from one place: a Hugging Face folder (TransformerLens 4
`TransformerBridge.boot_transformers`), a TransformerLens-native config (`boot_native`), or a
plain `torch.nn.Module` (`wrap_module`). `workbench.models.loading.load_model` picks which from
a spec; `workbench.models.series.CheckpointSeries` boots each checkpoint with the same functions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.devices import resolve_device
from workbench.errors import UnknownModelError
from workbench.models.handle import ModelHandle, ModelInfo

log = logging.getLogger(__name__)


def _boot_transformers(
    model_ref: str,
    *,
    source: str,
    name: str,
    device: torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool,
    location: Path | None,
    checkpoint_step: int | None = None,
) -> ModelHandle:
    from transformer_lens.model_bridge import TransformerBridge

    if location is not None:
        _refuse_pickles(location)
    try:
        bridge = TransformerBridge.boot_transformers(
            model_ref, device=device, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except OSError as exc:
        raise UnknownModelError(f"could not load {source!r} from {model_ref!r}: {exc}") from exc
    bridge.eval()
    info = ModelInfo(
        name=name,
        source=source,
        kind="transformers",
        location=str(location) if location else None,
        checkpoint_step=checkpoint_step,
        trust_remote_code=trust_remote_code,
    )
    return ModelHandle(
        model=bridge, info=info, tokenizer=bridge.tokenizer, device=device, dtype=dtype
    )


def _refuse_pickles(folder: Path) -> None:
    """A folder whose only weights are pickles is loaded by transformers with weights_only=True;
    we say so up front rather than letting a malicious pickle reach any unpickler."""
    from workbench.models.weights import weight_files

    files = weight_files(folder)
    pickles = [f for f in files if f.suffix != ".safetensors"]
    if pickles and len(pickles) == len(files):
        from workbench.models.weights import load_state_dict

        for pickle_file in pickles:  # raises UnsafeCheckpointError on an unsafe pickle
            load_state_dict(pickle_file)


def _boot_native(
    config: Any,
    *,
    source: str,
    name: str | None,
    device: torch.device,
    dtype: torch.dtype,
    location: Path | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    checkpoint_step: int | None = None,
) -> ModelHandle:
    from transformer_lens.model_bridge import TransformerBridge

    try:
        bridge = TransformerBridge.boot_native(config, device=device, dtype=dtype)  # type: ignore[attr-defined]
    except (TypeError, ValueError, KeyError) as exc:
        raise UnknownModelError(
            f"invalid TransformerLens-native config from {source}: {exc}"
        ) from exc
    if state_dict is not None:
        bridge.load_state_dict(state_dict)
    bridge.eval()
    info = ModelInfo(
        name=name or "native",
        source=source,
        kind="native",
        location=str(location) if location else None,
        checkpoint_step=checkpoint_step,
    )
    return ModelHandle(
        model=bridge, info=info, tokenizer=bridge.tokenizer, device=device, dtype=dtype
    )


def wrap_module(
    module: nn.Module,
    *,
    name: str,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    location: Path | None = None,
    checkpoint_step: int | None = None,
) -> ModelHandle:
    """Wrap any `nn.Module` (sites = its module paths); moves it to `device`/`dtype`, eval mode."""
    device = device or resolve_device("auto")
    module = module.to(device=device, dtype=dtype).eval()
    info = ModelInfo(
        name=name,
        source="<module>",
        kind="torch",
        location=str(location) if location else None,
        checkpoint_step=checkpoint_step,
    )
    return ModelHandle(model=module, info=info, device=device, dtype=dtype)
