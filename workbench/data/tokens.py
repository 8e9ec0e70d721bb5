"""Map a tokenizer's tokens onto the whitespace-separated words of a text, so that per-word
ground truth (part of speech, hidden state, ...) becomes per-token labels; and turn a store's
token ids back into text with the tokenizer of the model it was captured from."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import InputError

_WORD = re.compile(r"\S+")


def word_index(tokenizer: Any, texts: Sequence[str], max_length: int | None) -> list[np.ndarray]:
    """For each text, (n_tokens,) int64: the index of the whitespace word each token belongs
    to, -1 for special tokens (BOS, CLS, SEP). Tokens are those the model sees for that text
    alone, unpadded and truncated to `max_length` like `ModelHandle.tokenize`.

    Uses the fast tokenizer's character offsets; a token is assigned to the word containing its
    first character.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(
            "per-word labels need a fast (Rust) tokenizer that reports character offsets"
        )
    enc = tokenizer(
        list(texts),
        return_offsets_mapping=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    out = []
    for text, offsets in zip(texts, enc["offset_mapping"], strict=True):
        starts = np.array([m.start() for m in _WORD.finditer(text)], dtype=np.int64)
        ends = np.array([m.end() for m in _WORD.finditer(text)], dtype=np.int64)
        index = np.full(len(offsets), -1, dtype=np.int64)
        for t, (start, end) in enumerate(offsets):
            if end > start:
                w = int(np.searchsorted(starts, start, side="right")) - 1
                if w >= 0 and start < ends[w]:
                    index[t] = w
        out.append(index)
    return out


def token_labels(word_labels: Sequence[int], index: np.ndarray) -> np.ndarray:
    """Per-token labels from per-word labels through a `word_index` row (-1 where no word)."""
    labels = np.asarray(word_labels, dtype=np.int64)
    out = np.full(index.shape, -1, dtype=np.int64)
    has_word = index >= 0
    if has_word.any() and int(index[has_word].max()) >= len(labels):
        raise InputError(
            f"{len(labels)} word labels for a text with more words ({int(index.max()) + 1})"
        )
    out[has_word] = labels[index[has_word]]
    return out


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def folder_decoder(folder: str | Path | None) -> Callable[[int], str] | None:
    """`decode(token_id) -> str` with the tokenizer saved in `folder` (local files only), or
    None when `folder` is empty, missing, or holds no tokenizer. Decoders are cached per folder
    and memoise token ids."""
    if not folder or not Path(folder).is_dir():
        return None
    path = Path(folder)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        return None
    return _decoder_for(str(path.resolve()))


def store_decoder(store: Any) -> Callable[[int], str] | None:
    """`folder_decoder` of the model folder a store was captured from (its provenance
    `location`), or None."""
    return folder_decoder((getattr(store, "provenance", None) or {}).get("location"))


@lru_cache(maxsize=8)
def _decoder_for(folder: str) -> Callable[[int], str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)

    @lru_cache(maxsize=4096)
    def decode(token_id: int) -> str:
        return str(tokenizer.decode([int(token_id)]))

    return decode


def context_span(example_index: np.ndarray, row: int, before: int, after: int) -> tuple[int, int]:
    """Rows [lo, hi) around `row` that show it in context: up to `before` rows before it and
    `after` after it, never leaving its example (rows of one example are contiguous in a store).
    """
    example = example_index[row]
    lo = row
    while lo > 0 and example_index[lo - 1] == example and row - lo < before:
        lo -= 1
    hi = row + 1
    while hi < len(example_index) and example_index[hi] == example and hi - row <= after:
        hi += 1
    return lo, hi
