"""Device and dtype resolution: CUDA when present, never required."""

from __future__ import annotations

import torch

from workbench.errors import InputError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """`"auto"` (or None) picks CUDA when available, else CPU; anything else is validated."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} was asked for but CUDA is not available; use 'auto' or 'cpu'"
        )
    return resolved


def resolve_dtype(
    dtype: str | torch.dtype | None, device: torch.device | None = None
) -> torch.dtype:
    """Parse a dtype name. `"auto"`: bf16 on CUDA with bf16 support, fp32 on CPU (where half
    precision is slow and less accurate).

    With a `device` (the dtype a model computes in there), float16 on the CPU is refused:
    torch has no fast float16 matmul on CPUs (about 30x slower than float32 on this project's
    machines, while bfloat16 has fast kernels), so a float16 model there is never what was
    meant. Without a device (a store's on-disk dtype) every name is accepted."""
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif dtype is None or dtype == "auto":
        if device is not None and device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    elif dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; valid: 'auto', {', '.join(sorted(DTYPES))}")
    else:
        resolved = DTYPES[dtype]
    if device is not None and device.type == "cpu" and resolved == torch.float16:
        raise InputError(
            f"dtype {dtype if isinstance(dtype, str) else 'float16'!r} on the CPU: torch has no "
            "fast float16 kernels there (matmuls run about 30x slower than float32); use "
            "'float32' (or 'auto'), or 'bfloat16' on the CPU, or float16 with --device cuda"
        )
    return resolved
