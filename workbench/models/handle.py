"""ModelHandle: one loaded model, whatever its source, with its sites, tokenizer and lock."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.errors import InputError

#: Messages of torch errors that mean "wrong input shape or dtype".
_SHAPE_ERROR = re.compile(r"shape|size|dtype|scalar type|mat1 and mat2|channels|dimension", re.I)

#: The kinds of model a handle can wrap.
KINDS = ("transformers", "native", "torch")


@dataclass(frozen=True)
class ModelInfo:
    """Provenance of a loaded model; recorded in every store and result made from it."""

    name: str
    source: str  # what the user asked for (short name, path, hub name, "<module>")
    kind: str  # one of KINDS
    location: str | None = None  # resolved folder or file, if any
    checkpoint_step: int | None = None
    trust_remote_code: bool = False


@dataclass
class Batch:
    """Model inputs prepared by `ModelHandle.prepare`.

    Language models: `input_ids` and `attention_mask` are (batch, pos), left-padded, mask 1 on real
    tokens. Plain modules: `args` holds the positional tensors, first dim = batch.
    """

    input_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    args: tuple[torch.Tensor, ...] = ()

    @property
    def n_examples(self) -> int:
        ref = self.input_ids if self.input_ids is not None else self.args[0]
        return int(ref.shape[0])

    @property
    def is_sequence(self) -> bool:
        return self.input_ids is not None


@dataclass
class ModelHandle:
    """A model + tokenizer (if any) + site map + re-entrant lock + metadata.

    Hold `lock` around every hooked forward pass: the web app shares one handle between sessions,
    and hooks are per-module state. `capture` and `intervene` take it for you.
    """

    model: nn.Module
    info: ModelInfo
    tokenizer: Any = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _site_modules: dict[str, nn.Module] | None = field(default=None, repr=False)
    _weights_hash: str | None = field(default=None, repr=False)
    #: site -> calls per forward pass, learnt by a full pass (for stopping early on plain modules)
    _site_calls: dict[str, int] = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------------- sites
    @property
    def site_modules(self) -> dict[str, nn.Module]:
        """Site name -> the module whose output is that site (built once)."""
        if self._site_modules is None:
            if self.info.kind in ("transformers", "native"):
                # TransformerLens hook names, aliases (blocks.0.hook_resid_post) included.
                hook_dict: dict[str, nn.Module] = self.model.hook_dict  # type: ignore[assignment]
                self._site_modules = dict(hook_dict)
            else:
                self._site_modules = {n: m for n, m in self.model.named_modules() if n}
        return self._site_modules

    def sites(self) -> list[str]:
        """Every site name of the model, in module-registration order."""
        return list(self.site_modules)

    @property
    def is_language_model(self) -> bool:
        return self.info.kind in ("transformers", "native")

    # ---------------------------------------------------------------- inputs
    def prepare(self, inputs: Any, max_length: int | None = None) -> Batch:
        """Turn texts, token ids or tensors into a `Batch` on the model's device.

        Language models accept a string, a list of strings (tokenized and left-padded), a
        (batch, pos) integer tensor, or a dict with `input_ids` and optional `attention_mask`.
        Plain modules accept a tensor (or a tuple of tensors) whose first dim is the batch.
        """
        if isinstance(inputs, Batch):
            return inputs
        if self.is_language_model:
            return self._prepare_tokens(inputs, max_length)
        if isinstance(inputs, torch.Tensor):
            inputs = (inputs,)
        if not isinstance(inputs, tuple) or not all(isinstance(t, torch.Tensor) for t in inputs):
            raise InputError(
                f"model {self.info.name!r} is a plain torch module: pass a tensor or a tuple of "
                f"tensors with the batch first, not {type(inputs).__name__}"
            )
        args = tuple(self._to_device(t) for t in inputs)
        return Batch(args=args)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.is_floating_point():
            return tensor.to(self.device, self.dtype)
        return tensor.to(self.device)

    def _prepare_tokens(self, inputs: Any, max_length: int | None) -> Batch:
        if isinstance(inputs, str):
            inputs = [inputs]
        if isinstance(inputs, Sequence) and inputs and all(isinstance(t, str) for t in inputs):
            if self.tokenizer is None:
                raise InputError(f"model {self.info.name!r} has no tokenizer: pass token ids")
            return self.tokenize(list(inputs), max_length=max_length)
        if isinstance(inputs, dict):
            ids, mask = inputs.get("input_ids"), inputs.get("attention_mask")
        elif isinstance(inputs, torch.Tensor):
            ids, mask = inputs, None
        else:
            raise InputError(
                f"cannot use {type(inputs).__name__} as input to language model "
                f"{self.info.name!r}: pass a string, a list of strings, a (batch, pos) tensor of "
                "token ids, or a dict with input_ids/attention_mask"
            )
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int32, torch.int64):
            raise InputError(
                f"token ids must be an integer tensor, got {getattr(ids, 'dtype', ids)!r}"
            )
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2:
            raise InputError(f"token ids must have shape (batch, pos), got {tuple(ids.shape)}")
        vocab = self.vocab_size
        if vocab is not None and ids.numel() and (int(ids.max()) >= vocab or int(ids.min()) < 0):
            raise InputError(
                f"token ids must lie in [0, {vocab}); got range [{int(ids.min())}, {int(ids.max())}]"
            )
        if mask is None:
            mask = torch.ones_like(ids)
        if mask.shape != ids.shape:
            raise InputError(
                f"attention_mask shape {tuple(mask.shape)} != input_ids shape {tuple(ids.shape)}"
            )
        if bool((mask[:, 1:] < mask[:, :-1]).any()):
            raise InputError(
                "attention_mask is right-padded; the workbench expects left padding (pad tokens first)"
            )
        return Batch(
            input_ids=ids.to(self.device).long(), attention_mask=mask.to(self.device).long()
        )

    def tokenize(self, texts: list[str], max_length: int | None = None) -> Batch:
        """Tokenize `texts` with left padding (so the last real token is at position -1)."""
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        enc = tok(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=max_length is not None,
            max_length=max_length,
        )
        return Batch(
            input_ids=enc["input_ids"].to(self.device),
            attention_mask=enc["attention_mask"].to(self.device),
        )

    @property
    def vocab_size(self) -> int | None:
        cfg = getattr(self.model, "cfg", None)
        return getattr(cfg, "d_vocab", None) if cfg is not None else None

    # --------------------------------------------------------------- running
    def run(self, batch: Batch, **kwargs: Any) -> Any:
        """One forward pass (no grad) on a prepared batch; returns the model's output. Holds
        `lock`, so it never runs under another thread's `intervene` edits."""
        with self.lock, torch.no_grad():
            if batch.is_sequence:
                return self.model(batch.input_ids, attention_mask=batch.attention_mask, **kwargs)
            try:
                return self.model(*batch.args, **kwargs)
            except RuntimeError as exc:
                if not _SHAPE_ERROR.search(str(exc)):
                    raise
                got = ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in batch.args)
                raise InputError(
                    f"model {self.info.name!r} cannot take input {got}: {str(exc).splitlines()[0]}"
                ) from exc

    def generate(
        self, inputs: Any, max_new_tokens: int = 10, use_cache: bool = True
    ) -> torch.Tensor:
        """Greedy generation; returns (batch, pos + max_new_tokens) token ids (prompt included).

        Interventions installed with `intervene` apply at every step, with and without the cache;
        holds `lock`, so another thread's edits never apply to it.
        """
        if not self.is_language_model:
            raise InputError(
                f"model {self.info.name!r} is not a language model; it cannot generate"
            )
        batch = self.prepare(inputs)
        with self.lock, torch.no_grad():
            return self.model.generate(  # type: ignore[operator]
                batch.input_ids,
                attention_mask=batch.attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                use_past_kv_cache=use_cache,
                stop_at_eos=False,
                return_type="tokens",
                verbose=False,
            )

    # ------------------------------------------------------------ provenance
    @property
    def weights_hash(self) -> str:
        """Content hash of the weights (of the files when loaded from disk), computed once."""
        if self._weights_hash is None:
            from pathlib import Path

            from workbench.models.weights import hash_files, hash_state_dict, weight_files

            location = Path(self.info.location) if self.info.location else None
            if location is not None and location.is_dir() and weight_files(location):
                self._weights_hash = hash_files(weight_files(location))
            elif location is not None and location.is_file():
                self._weights_hash = hash_files([location])
            else:
                self._weights_hash = hash_state_dict(self.model)
        return self._weights_hash

    def provenance(self) -> dict[str, Any]:
        """JSON-ready provenance of this model for manifests and results."""
        return {
            "model": self.info.name,
            "source": self.info.source,
            "kind": self.info.kind,
            "location": self.info.location,
            "checkpoint_step": self.info.checkpoint_step,
            "weights_hash": self.weights_hash,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
        }
