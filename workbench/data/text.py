"""The `text` dataset: natural technical English available offline (see datasets/text.md)."""

from __future__ import annotations

import re

from workbench.data.registry import Example, register_dataset

_WORDS_PER_PASSAGE = 48


@register_dataset("text")
def python_docs_text(n_examples: int | None, seed: int) -> list[Example]:
    """Natural technical English available offline: the Python reference's topic pages
    (`pydoc_data.topics`, about 65k words), with code blocks and rule lines removed, cut into
    passages of 48 words. Label `topic` = index of the source page (sorted by name).
    The order is fixed (the seed does not shuffle) so that passages line up across models.
    """
    from pydoc_data.topics import topics

    examples: list[Example] = []
    for topic_id, key in enumerate(sorted(topics)):
        prose = [
            line.strip()
            for line in topics[key].splitlines()
            if line.strip()
            and not line.startswith("   ")
            and not re.fullmatch(r"[*=\-]+", line.strip())
        ]
        words = " ".join(prose).split()
        for start in range(0, len(words) - _WORDS_PER_PASSAGE + 1, _WORDS_PER_PASSAGE):
            passage = " ".join(words[start : start + _WORDS_PER_PASSAGE])
            examples.append(Example(text=passage, labels={"topic": topic_id}))
    return examples[:n_examples] if n_examples is not None else examples
