"""Build small Hugging Face model folders from a config (no download): a GPT-NeoX causal LM
(Pythia's architecture) with a word-level tokenizer. Used by tests, benchmarks and the zoo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

SPECIAL_TOKENS = ("<|endoftext|>", "<|padding|>", "<|unk|>")


def word_tokenizer(words: Sequence[str]):
    """A `PreTrainedTokenizerFast` over `words` (whitespace + punctuation pre-tokenizer).

    Ids: 0 = <|endoftext|> (bos/eos), 1 = <|padding|>, 2 = <|unk|>, then `words` in order.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|padding|>",
        unk_token="<|unk|>",
    )


def gpt_neox_model(
    vocab_size: int,
    *,
    n_layers: int = 6,
    d_model: int = 128,
    n_heads: int = 4,
    d_mlp: int | None = None,
    n_ctx: int = 256,
    seed: int = 0,
):
    """A randomly initialised `GPTNeoXForCausalLM` (Pythia's architecture) for a vocabulary laid
    out like `word_tokenizer`'s (0 = bos/eos, 1 = pad)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=vocab_size, hidden_size=d_model, num_hidden_layers=n_layers,
        num_attention_heads=n_heads, intermediate_size=d_mlp or 4 * d_model,
        max_position_embeddings=n_ctx, bos_token_id=0, eos_token_id=0, pad_token_id=1,
    )  # fmt: skip
    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(config)


def save_hf_folder(model, tokenizer, folder: str | Path) -> Path:
    """Write a model and its tokenizer as a Hugging Face folder (safetensors weights)."""
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def build_gpt_neox(
    folder: str | Path,
    words: Sequence[str],
    *,
    n_layers: int = 6,
    d_model: int = 128,
    n_heads: int = 4,
    d_mlp: int | None = None,
    n_ctx: int = 256,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised GPT-NeoX causal LM and its tokenizer to `folder`.

    Returns the folder, loadable with `load_model(folder)` (safetensors weights).
    """
    tokenizer = word_tokenizer(words)
    model = gpt_neox_model(
        len(tokenizer),
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_mlp=d_mlp,
        n_ctx=n_ctx,
        seed=seed,
    )
    return save_hf_folder(model, tokenizer, folder)
