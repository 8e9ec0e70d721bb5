"""Position selection: which token positions of a (batch, pos, ...) activation become rows.

Positions are counted in the *unpadded* sequence, so that left padding never shifts them:
`0` is the first real token, `-1` (or "last") the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.errors import InputError

#: What `positions` may be: "all" real tokens, the "last" real token, one index, a slice over the
#: unpadded sequence, or a bool mask (batch, pos) aligned with the padded batch.
PositionSpec = str | int | slice | torch.Tensor


@dataclass(frozen=True)
class Selection:
    """Row index into a (batch, pos, ...) tensor, and what each row is.

    All tensors are (rows,) int64 on the model's device.
    """

    batch_index: torch.Tensor
    pos_index: torch.Tensor  # index into the padded pos axis
    position: torch.Tensor  # position in the unpadded sequence
    shape: tuple[int, int]  # (batch, pos) of the padded batch


def parse_positions(text: str) -> PositionSpec:
    """CLI form: `all`, `last`, an int (`-1`), or a slice `START:STOP[:STEP]` (`-4:`)."""
    if text in ("all", "last"):
        return text
    if ":" in text:
        try:
            parts = [int(p) if p.strip() else None for p in text.split(":")]
        except ValueError:
            raise InputError(
                f"bad positions {text!r}; valid: all, last, an integer, or START:STOP[:STEP]"
            ) from None
        if len(parts) > 3:
            raise InputError(f"bad position slice {text!r}; use START:STOP[:STEP]")
        return slice(*parts)
    try:
        return int(text)
    except ValueError:
        raise InputError(
            f"bad positions {text!r}; valid: all, last, an integer, or START:STOP[:STEP]"
        ) from None


def select(mask: torch.Tensor, spec: PositionSpec) -> Selection:
    """Rows selected by `spec` from a left-padded batch with attention `mask` (batch, pos).

    Rows come grouped by example, in position order.
    """
    if mask.ndim != 2:
        raise InputError(f"attention mask must be (batch, pos), got {tuple(mask.shape)}")
    mask = mask.bool()
    n_batch, n_pos = mask.shape
    lengths = mask.sum(dim=1)
    pad = n_pos - lengths
    positions = torch.arange(n_pos, device=mask.device)[None, :] - pad[:, None]
    if isinstance(spec, torch.Tensor):
        if spec.shape != mask.shape or spec.dtype != torch.bool:
            raise InputError(
                f"position mask must be bool with the batch's shape {tuple(mask.shape)}, "
                f"got {spec.dtype} {tuple(spec.shape)}"
            )
        chosen = spec.to(mask.device) & mask
    elif spec == "all":
        chosen = mask
    elif spec == "last":
        chosen = mask & (positions == (lengths - 1)[:, None])
    elif isinstance(spec, int) and not isinstance(spec, bool):
        target = lengths + spec if spec < 0 else torch.full_like(lengths, spec)
        chosen = mask & (positions == target[:, None])
    elif isinstance(spec, slice):
        chosen = torch.zeros_like(mask)
        for b in range(n_batch):
            keep = list(range(int(lengths[b])))[spec]
            if keep:
                chosen[b, torch.tensor(keep, device=mask.device) + pad[b]] = True
    else:
        raise InputError(
            f"bad positions {spec!r}; valid: 'all', 'last', an int, a slice, or a bool mask"
        )
    batch_index, pos_index = chosen.nonzero(as_tuple=True)
    return Selection(
        batch_index=batch_index,
        pos_index=pos_index,
        position=positions[batch_index, pos_index],
        shape=(n_batch, n_pos),
    )
