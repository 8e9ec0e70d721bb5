"""Safe weight loading and content hashing.

Only two formats are read: safetensors (no code execution possible) and PyTorch pickles through
`torch.load(weights_only=True)`, which refuses any pickle that would construct arbitrary objects.

Content fingerprints of weight files (`hash_files`) live in `workbench.models.fingerprints`
(cached by path, size and mtime) and are re-exported here.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch

from workbench.errors import InputError, UnsafeCheckpointError
from workbench.models.fingerprints import hash_files

__all__ = ["WEIGHT_SUFFIXES", "hash_files", "hash_state_dict", "load_state_dict", "weight_files"]

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from `path` (safetensors, or a torch pickle read with weights_only=True).

    Raises UnsafeCheckpointError for a pickle that needs arbitrary code to unpickle; the pickle's
    code is never executed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix not in WEIGHT_SUFFIXES:
        raise InputError(
            f"unknown checkpoint format {path.suffix!r} for {str(path)!r}; "
            f"valid: {', '.join(WEIGHT_SUFFIXES)}"
        )
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        raise UnsafeCheckpointError(
            f"refusing to load {str(path)!r}: it is a pickle that cannot be read with "
            f"weights_only=True (it would construct arbitrary Python objects). Convert it to "
            f"safetensors with code you trust. Detail: {str(exc).splitlines()[0]}"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{str(path)!r} does not hold a flat state dict of tensors")
    return state


def hash_state_dict(module: torch.nn.Module) -> str:
    """sha256 over parameter names, shapes, dtypes and bytes of a module's state dict."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a Hugging Face style folder, preferring safetensors."""
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        return safetensors
    return sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
