"""Array conversions between callers' arrays (numpy or torch) and the store's on-disk dtypes.

The store keeps float32, float16 or bfloat16. numpy has no bfloat16, so bf16 lives on disk as
its raw 16-bit patterns in a ``uint16`` .npy, with ``"bfloat16"`` recorded in the manifest; reads
widen it to float32 (exact: bf16 is the top half of a float32). torch is never imported here;
torch tensors are recognised by duck typing, so reading a store does not pay torch's import.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from workbench.errors import InputError

STORED_NUMPY: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
}


def is_torch_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (uint16, any shape); exact."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of float32 `x`, rounded to nearest even (as torch does)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (u + (((u >> 16) & 1) + np.uint32(0x7FFF))) >> 16
    bits = rounded.astype(np.uint16)
    # The addition wraps only for NaN payloads above 0xFFFF7FFF; keep those NaN.
    bits[u > np.uint32(0xFFFF7FFF)] = 0xFFC0
    return bits


def to_numpy_rows(x: Any, what: str) -> tuple[np.ndarray, str]:
    """(array, dtype name) of a float activation array; bf16 tensors come back as uint16 bits.

    Torch tensors are detached and moved to the CPU; the array is not copied when avoidable.
    """
    if is_torch_tensor(x):
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        name = str(t.dtype).removeprefix("torch.")
        if name == "bfloat16":
            import torch

            return t.contiguous().view(torch.int16).numpy().view(np.uint16), "bfloat16"
        if not t.is_floating_point():
            raise InputError(f"{what}: activations must be floating point, got torch.{name}")
        return t.numpy(), name
    if not isinstance(x, np.ndarray):
        raise InputError(f"{what}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise InputError(f"{what}: activations must be floating point, got dtype {x.dtype}")
    return x, x.dtype.name


def to_stored(array: np.ndarray, source: str, stored: str) -> np.ndarray:
    """`array` (dtype name `source`, bf16 as uint16 bits) in the on-disk representation."""
    if source == stored:
        return array
    if stored == "bfloat16":
        f32 = array.astype(np.float32, copy=False)
        return f32_to_bf16_bits(f32)
    if source == "bfloat16":
        array = bf16_bits_to_f32(array)
    with np.errstate(over="ignore"):  # overflow to inf is reported as non-finite, by site
        return array.astype(STORED_NUMPY[stored])


def from_stored(array: np.ndarray, stored: str, dtype: Any) -> np.ndarray:
    """Values of an on-disk array as numpy `dtype` (None: native, float32 for bfloat16)."""
    if stored == "bfloat16":
        array = bf16_bits_to_f32(np.asarray(array))
        return array if dtype is None else array.astype(dtype, copy=False)
    return np.asarray(array) if dtype is None else np.asarray(array).astype(dtype, copy=False)
