"""Capture over a whole dataset into an `ActivationStore`: batched, chunked, resumable.

Rows from several batches are buffered into one chunk (about `chunk_rows` rows) so that shards
stay large enough to write fast; a killed run keeps every committed chunk and resumes from the
first example not yet committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench import console
from workbench.data import Example
from workbench.data.tokens import token_labels, word_index
from workbench.devices import resolve_dtype
from workbench.errors import InputError
from workbench.hooks.capture import capture
from workbench.models.handle import ModelHandle
from workbench.sites.names import expand_sites
from workbench.sites.positions import PositionSpec

log = logging.getLogger(__name__)


def capture_spec(
    handle: ModelHandle,
    sites: list[str],
    dataset: str,
    n_examples: int,
    positions: PositionSpec,
    store_dtype: str,
    max_length: int | None,
) -> dict[str, Any]:
    """The identity of a capture: two runs with equal specs produce the same store."""
    return {
        "model": handle.info.name,
        "weights_hash": handle.weights_hash,
        "checkpoint_step": handle.info.checkpoint_step,
        "dataset": dataset,
        "n_examples": n_examples,
        "sites": sites,
        "positions": positions if isinstance(positions, (str, int)) else repr(positions),
        "dtype": store_dtype,
        "max_length": max_length,
    }


def capture_to_store(
    handle: ModelHandle,
    sites: str | Sequence[str],
    examples: Sequence[Example | str],
    out: str | Path,
    *,
    dataset: str = "custom",
    positions: PositionSpec = "all",
    store_dtype: str = "float32",
    batch_size: int = 32,
    max_length: int | None = 128,
    chunk_rows: int = 16384,
    overwrite: bool = False,
    progress: bool = True,
):
    """Capture `examples` at `sites` into the store at `out`; returns the `ActivationStore`.

    Re-running the same call on an interrupted store resumes it; on a complete one it returns
    the store untouched. A store with another spec is refused unless `overwrite`.
    """
    from workbench.store import ActivationStore, StoreWriter

    names = expand_sites(handle.sites(), sites)
    items = [e if isinstance(e, Example) else Example(text=e) for e in examples]
    spec = capture_spec(handle, names, dataset, len(items), positions, store_dtype, max_length)
    if not overwrite and StoreWriter.existing_complete(out, spec):
        log.info("store %s is already complete", out)
        return ActivationStore(out)
    cast = resolve_dtype(store_dtype)
    writer = StoreWriter(
        out, spec, provenance={**handle.provenance(), "dataset": dataset}, overwrite=overwrite
    )
    start = writer.resume_point
    buffer = _ChunkBuffer(names, handle.tokenizer, max_length)
    with console.progress(len(items), "capture", unit="ex", initial=start, enabled=progress) as bar:
        for lo in range(start, len(items), batch_size):
            batch = items[lo : lo + batch_size]
            acts = capture(
                handle,
                names,
                _model_inputs(handle, batch),
                positions=positions if handle.is_language_model else None,
                dtype=cast,
                max_length=max_length,
            )
            buffer.add(acts, lo, batch)
            bar.update(len(batch))
            if buffer.n_rows >= chunk_rows:
                buffer.flush(writer)
        buffer.flush(writer)
    return writer.finalize()


def _model_inputs(handle: ModelHandle, batch: list[Example]) -> Any:
    """Texts for language models; the stacked `inputs` arrays for plain modules."""
    if handle.is_language_model:
        if any(e.inputs is not None and not e.text for e in batch):
            raise InputError(
                f"this dataset has array inputs, not text; language model {handle.info.name!r} "
                "cannot read it (use a plain module, e.g. a digits classifier)"
            )
        return [e.text for e in batch]
    if any(e.inputs is None for e in batch):
        raise InputError(
            f"model {handle.info.name!r} is a plain module: it needs a dataset with array inputs "
            "(e.g. digits), not text"
        )
    return torch.stack([torch.as_tensor(np.asarray(e.inputs)) for e in batch])


class _ChunkBuffer:
    """Rows of several batches, appended to the store as one chunk."""

    def __init__(self, sites: list[str], tokenizer: Any, max_length: int | None) -> None:
        self.sites = sites
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._reset()

    def _reset(self) -> None:
        self.parts: dict[str, list[torch.Tensor]] = {s: [] for s in self.sites}
        self.token_ids: list[np.ndarray] = []
        self.example_index: list[np.ndarray] = []
        self.position: list[np.ndarray] = []
        self.example_labels: dict[str, list[int]] = {}
        self.row_labels: dict[str, list[np.ndarray]] = {}
        self.example_stop = 0
        self.n_rows = 0

    def add(self, acts: Any, offset: int, batch: list[Example]) -> None:
        for site in self.sites:
            tensor = acts[site]
            self.parts[site].append(tensor.cpu())
        if acts.token_ids is None:  # a plain module: one row per example
            n = len(batch)
            self.token_ids.append(np.full(n, -1, dtype=np.int64))
            self.example_index.append(np.arange(offset, offset + n, dtype=np.int64))
            self.position.append(np.zeros(n, dtype=np.int64))
        else:
            self.token_ids.append(acts.token_ids.cpu().numpy())
            self.example_index.append(acts.example_index.cpu().numpy() + offset)
            self.position.append(acts.position.cpu().numpy())
        for example in batch:
            for key, value in example.labels.items():
                self.example_labels.setdefault(key, []).append(value)
        self._add_word_labels(acts, batch)
        self.example_stop = offset + len(batch)
        self.n_rows += len(self.token_ids[-1])

    def _add_word_labels(self, acts: Any, batch: list[Example]) -> None:
        """Per-word ground truth -> one label per stored row (token), -1 where none."""
        names = sorted({name for e in batch for name in e.word_labels} | set(self.row_labels))
        if not names:
            return
        index = word_index(self.tokenizer, [e.text for e in batch], self.max_length)
        rows_example = acts.example_index.cpu().numpy()
        rows_position = acts.position.cpu().numpy()
        for name in names:
            per_example = [
                token_labels(e.word_labels[name], index[i])
                if name in e.word_labels
                else np.full(len(index[i]), -1, dtype=np.int64)
                for i, e in enumerate(batch)
            ]
            values = np.array(
                [per_example[b][p] for b, p in zip(rows_example, rows_position, strict=True)],
                dtype=np.int64,
            )
            if name not in self.row_labels:  # first seen now: earlier batches had none of it
                earlier = self.token_ids[:-1]
                self.row_labels[name] = [np.full(len(t), -1, dtype=np.int64) for t in earlier]
            self.row_labels[name].append(values)

    def flush(self, writer: Any) -> None:
        if not self.token_ids:
            return
        writer.append(
            {s: torch.cat(p) for s, p in self.parts.items()},
            token_ids=np.concatenate(self.token_ids),
            example_index=np.concatenate(self.example_index),
            position=np.concatenate(self.position),
            example_labels={k: np.asarray(v) for k, v in self.example_labels.items()} or None,
            row_labels={k: np.concatenate(v) for k, v in self.row_labels.items()} or None,
            example_stop=self.example_stop,
        )
        self._reset()
