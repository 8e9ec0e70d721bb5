"""Per-layer views of one prompt: residual-stream norms and the logit lens.

Logit lens (nostalgebraist 2020): decode each layer's residual stream `h_l` (after block l) with
the model's own final layer norm and unembedding, `softmax(W_U LN_final(h_l))`, to see at which
depth the next-token prediction forms. The last layer's lens equals the model's logits exactly
(tested). Needs a causal LM with `ln_final` and `unembed` (TransformerBridge models).
"""

from __future__ import annotations

import pandas as pd
import torch

from workbench.errors import InputError
from workbench.hooks.capture import capture
from workbench.models.handle import ModelHandle
from workbench.sites.names import expand_sites, layer_index

RESID = "blocks.*.hook_resid_post"


def is_causal_lm(handle: ModelHandle) -> bool:
    architecture = str(getattr(getattr(handle.model, "cfg", None), "architecture", ""))
    return handle.is_language_model and architecture.endswith("CausalLM")


def _tokens(handle: ModelHandle, ids: torch.Tensor | None) -> list[str]:
    if ids is None:
        raise InputError("no token ids were captured (positions=None)")
    return [handle.tokenizer.decode([int(i)]) for i in ids]


def layer_norms(handle: ModelHandle, text: str) -> pd.DataFrame:
    """Tidy frame: one row per (layer, position) with the L2 norm of the residual stream
    after that block. Columns: site, layer, position, token, norm."""
    if not handle.is_language_model:
        raise InputError(
            f"layer norms of a prompt need a language model; {handle.info.name!r} is not one"
        )
    acts = capture(handle, RESID, [text])
    tokens = _tokens(handle, acts.token_ids)
    rows = []
    for site in acts.sites:
        norms = acts[site].norm(dim=-1)
        for pos, norm in enumerate(norms.tolist()):
            rows.append(
                {
                    "site": site,
                    "layer": layer_index(site),
                    "position": pos,
                    "token": tokens[pos],
                    "norm": norm,
                }
            )
    return pd.DataFrame(rows)


def logit_lens(handle: ModelHandle, text: str) -> pd.DataFrame:
    """Tidy frame: one row per (layer, position): the lens's top token and probability, and the
    probability it gives the actual next token (NaN at the last position).

    Columns: layer, position, token, next_token, top_token, top_prob, next_token_prob.
    """
    if not is_causal_lm(handle):
        raise InputError(
            f"the logit lens needs a causal language model; {handle.info.name!r} is not one"
        )
    sites = expand_sites(handle.sites(), RESID)
    with handle.lock:  # to the last unembedding: no other thread's edit at ln_final applies
        return _lens_frame(handle, sites, text)


def _lens_frame(handle: ModelHandle, sites: list[str], text: str) -> pd.DataFrame:
    acts = capture(handle, sites, [text])
    tokens = _tokens(handle, acts.token_ids)
    ids = acts.token_ids
    assert ids is not None
    model = handle.model
    rows = []
    with torch.no_grad():
        for site in sites:
            logits = model.unembed(model.ln_final(acts[site][None].to(handle.dtype)))[0].float()  # type: ignore[operator]
            probs = logits.softmax(-1)
            top_prob, top_id = probs.max(-1)
            for pos in range(len(tokens)):
                nxt = int(ids[pos + 1]) if pos + 1 < len(ids) else None
                rows.append(
                    {
                        "layer": layer_index(site),
                        "position": pos,
                        "token": tokens[pos],
                        "next_token": tokens[pos + 1] if nxt is not None else "",
                        "top_token": handle.tokenizer.decode([int(top_id[pos])]),
                        "top_prob": float(top_prob[pos]),
                        "next_token_prob": float(probs[pos, nxt])
                        if nxt is not None
                        else float("nan"),
                    }
                )
    return pd.DataFrame(rows)
