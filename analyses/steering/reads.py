"""Where a steering direction is read: which token positions of each input give its activation.

Read positions (`read`), counted over the unpadded sequence:
- "content-mean" (the default, `DEFAULT_READ`): the mean over the content tokens of each input;
- "last-content": the last content token of each input;
- "last": the last real token; "mean": the mean over every real token; "all": every real
  token is a sample; an int: that position (CAA reads -2).

A *content* token is a real (unpadded) token that is not punctuation. A token is punctuation
when it is one of the tokenizer's special tokens (BOS/EOS/pad/unk...) or its decoded text,
alone, is empty or only whitespace and Unicode punctuation (categories P*: "." "," "!" "?"
"'" "-" ...). The rule needs only `tokenizer.decode([id])` and `all_special_ids`, so it is the
same for a Hugging Face tokenizer and for the zoo's word-level tokenizers (`workbench.zoo.hf_folder`
over `workbench.data.grammar.VOCABULARY`). A language model given without a tokenizer (token ids
only) has nothing to decode: every real token counts as content there, so "content-mean" is
"mean" and "last-content" is "last". An input with no content token at all falls back to its
real tokens.

Why "content-mean" is the default: texts end in punctuation (every grammar-lm example ends with
"."), and "last" reads the full stop, whose activation at block 0 is the token embedding itself,
the same in both sets: on the zoo's toy-lm the block-0 difference of means is exactly zero (at
blocks 1-3 the full stop has gathered the sentence and "last" works there). "last-content"
avoids the full stop but reads whichever word ends the text (on grammar-lm most often a topic
noun, which carries no sentiment): through the CLI its sentiment direction moved the concept at
no block. The mean over content tokens covers the words that carry the concept wherever they
sit, and moved it at every block, at 3x to 50x the random-direction control
(benchmarks/RESULTS.md, "Steering defaults (issue 22)").
"""

from __future__ import annotations

import unicodedata
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported on use, so that `workbench --help` stays fast
    import torch

    from workbench.models.handle import Batch, ModelHandle

READS = ("content-mean", "last-content", "last", "mean", "all")
DEFAULT_READ = "content-mean"
CONTENT_READS = ("content-mean", "last-content")

#: tokenizer -> {token id: is punctuation}, filled lazily with the ids actually seen
_PUNCTUATION: weakref.WeakKeyDictionary[Any, dict[int, bool]] = weakref.WeakKeyDictionary()


def is_punctuation_text(text: str) -> bool:
    """Whether decoded token text is empty or only whitespace and Unicode punctuation (P*)."""
    return all(ch.isspace() or unicodedata.category(ch).startswith("P") for ch in text)


def _table(tokenizer: Any) -> dict[int, bool]:
    try:
        return _PUNCTUATION.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: classify without a cache
        return {}


def punctuation_flags(tokenizer: Any, ids: torch.Tensor) -> torch.Tensor:
    """(same shape as ids) bool: which token ids are punctuation or special tokens under
    `tokenizer` (see the module docstring); None: no token is."""
    import torch

    if tokenizer is None:
        return torch.zeros_like(ids, dtype=torch.bool)
    table = _table(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    unique = [int(i) for i in torch.unique(ids).tolist()]
    for token in unique:
        if token not in table:
            table[token] = token in special or is_punctuation_text(tokenizer.decode([token]))
    flagged = torch.tensor([t for t in unique if table[t]], dtype=ids.dtype, device=ids.device)
    return torch.isin(ids, flagged)


def content_mask(handle: ModelHandle, batch: Batch) -> torch.Tensor:
    """(batch, pos) bool: the real tokens of `batch` that are not punctuation; a row with no
    such token keeps all its real tokens."""
    import torch

    assert batch.input_ids is not None and batch.attention_mask is not None
    real = batch.attention_mask.bool()
    content = real & ~punctuation_flags(handle.tokenizer, batch.input_ids)
    empty = ~content.any(dim=1)
    return torch.where(empty[:, None], real, content)


def last_true(mask: torch.Tensor) -> torch.Tensor:
    """(batch, pos) bool with only the last True of each row of `mask` kept (rows with none stay
    all False)."""
    import torch

    index = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, index, -1).max(dim=1).values
    return mask & (index == last[:, None])


def positions_for(handle: ModelHandle, batch: Batch, read: str) -> torch.Tensor:
    """The (batch, pos) bool position mask of a content read ("last-content", "content-mean")."""
    mask = content_mask(handle, batch)
    return last_true(mask) if read == "last-content" else mask
