"""Reading codes: which codes each token chose, code statistics per layer, code search (tokens
and contexts that activate a code; codes that fire for a label) and code purity against
ground-truth labels (Tamkin, Taufeeque, Goodman 2023, section on TokFSM: codes <-> states).

Conventions: a code *fires* on a token when it is among that token's k chosen codes. For a label
value v and a code c over the real tokens: precision = P(label = v | c fires), recall =
P(c fires | label = v). The best code for v is the one with the highest F1 (so a code that fires
once cannot win on precision alone); `purity` reports its precision and recall.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from analyses.codebook.model import encode_examples, lm_view, load_codebook_model
from workbench.errors import InputError


@torch.no_grad()
def collect_codes(handle, books, ids: torch.Tensor, mask: torch.Tensor, batch: int = 256) -> dict:
    """site -> (n, L, k) int64 code ids of every token of (ids, mask) (n, L), -1 at pads."""
    books.eval()
    out: dict[str, list[np.ndarray]] = {s: [] for s in books.sites}
    model = lm_view(handle)
    with books.insert(handle):
        for i in range(0, len(ids), batch):
            b_ids, b_mask = ids[i : i + batch], mask[i : i + batch]
            model(input_ids=b_ids, attention_mask=b_mask)
            for site, codes in books.last_ids().items():
                c = codes.cpu().numpy().copy()
                c[~b_mask.bool().cpu().numpy()] = -1
                out[site].append(c)
    return {s: np.concatenate(v) for s, v in out.items()}


def code_usage(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """(n_codes,) fraction of real tokens on which each code fires; codes (..., k), -1 = pad."""
    first = codes[..., 0]
    n_tokens = int((first >= 0).sum())
    if n_tokens == 0:
        raise InputError("no real tokens in the code array")
    fired = codes[codes >= 0]
    return np.bincount(fired, minlength=n_codes)[:n_codes] / n_tokens


def code_statistics(codes_by_site: dict[str, np.ndarray], n_codes: int) -> pd.DataFrame:
    """One row per site: n_tokens, active codes, dead codes (never fired), usage entropy (nats,
    of the code distribution over all k slots), its perplexity exp(H), and the top code's
    share."""
    rows = []
    for site, codes in codes_by_site.items():
        usage = code_usage(codes, n_codes)
        p = usage / usage.sum()
        nz = p[p > 0]
        entropy = float(-(nz * np.log(nz)).sum())
        rows.append(
            {
                "site": site,
                "n_tokens": int((codes[..., 0] >= 0).sum()),
                "active_codes": int((usage > 0).sum()),
                "dead_codes": int((usage == 0).sum()),
                "entropy_nats": entropy,
                "perplexity": float(np.exp(entropy)),
                "top_code_share": float(p.max()),
            }
        )
    return pd.DataFrame(rows)


def _fires(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, fire) over real tokens: fire (n_real, n_codes) bool."""
    flat = codes.reshape(-1, codes.shape[-1])
    real = flat[:, 0] >= 0
    flat = flat[real]
    fire = np.zeros((len(flat), n_codes), dtype=bool)
    fire[np.arange(len(flat))[:, None], flat] = True
    return real, fire


def purity(codes: np.ndarray, labels: np.ndarray, n_codes: int) -> pd.DataFrame:
    """For each label value (labels (n, L) aligned with codes (n, L, k); -1 = no label): the best
    code by F1 and its precision, recall and F1, and the support (tokens with that value)."""
    real, fire = _fires(codes, n_codes)
    lab = labels.reshape(-1)[real]
    keep = lab >= 0
    fire, lab = fire[keep], lab[keep]
    fired = fire.sum(0)  # (n_codes,)
    rows = []
    for v in np.unique(lab):
        hit = fire[lab == v].sum(0)  # (n_codes,) tokens with value v on which c fires
        precision = np.divide(hit, fired, out=np.zeros(n_codes), where=fired > 0)
        recall = hit / (lab == v).sum()
        f1 = np.divide(2 * precision * recall, precision + recall,
                       out=np.zeros(n_codes), where=precision + recall > 0)  # fmt: skip
        best = int(f1.argmax())
        rows.append({"label": int(v), "code": best, "precision": float(precision[best]),
                     "recall": float(recall[best]), "f1": float(f1[best]),
                     "support": int((lab == v).sum())})  # fmt: skip
    return pd.DataFrame(rows)


def codes_for_label(
    codes: np.ndarray, labels: np.ndarray, value: int, n_codes: int, top: int = 5,
    by: str = "f1", min_fires: int = 1,
) -> pd.DataFrame:  # fmt: skip
    """The `top` codes that fire most selectively for `value`: code, precision, recall, F1,
    fires (tokens it fires on), ranked by `by` ("f1", or "precision" with more firings first
    among equals) among the codes that fire on at least `min_fires` tokens."""
    if by not in ("f1", "precision"):
        raise InputError(f"by must be 'f1' or 'precision', got {by!r}")
    real, fire = _fires(codes, n_codes)
    lab = labels.reshape(-1)[real]
    if not (lab == value).any():
        raise InputError(f"label value {value} never occurs; values present: {np.unique(lab)[:20]}")
    hit = fire[lab == value].sum(0)
    fired = fire.sum(0)
    precision = np.divide(hit, fired, out=np.zeros(n_codes), where=fired > 0)
    recall = hit / (lab == value).sum()
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros(n_codes), where=precision + recall > 0)  # fmt: skip
    score = f1 if by == "f1" else precision
    eligible = fired >= max(min_fires, 1)
    order = np.lexsort((-fired, -np.where(eligible, score, -1.0)))[: min(top, int(eligible.sum()))]
    return pd.DataFrame({"code": order, "precision": precision[order], "recall": recall[order],
                         "f1": f1[order], "fires": fired[order]})  # fmt: skip


def top_contexts(
    codes: np.ndarray, ids: np.ndarray, code: int, tokenizer: Any, n: int = 10, window: int = 6
) -> pd.DataFrame:
    """Up to `n` contexts (the `window` tokens up to and including the token) where `code`
    fires, with the token and its frequency among all firings."""
    hits = np.argwhere((codes == code).any(-1))
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for ex, pos in hits:
        tok = tokenizer.convert_ids_to_tokens(int(ids[ex, pos]))
        counts[tok] = counts.get(tok, 0) + 1
    for ex, pos in hits[:n]:
        ctx = tokenizer.convert_ids_to_tokens(ids[ex, max(0, pos - window + 1) : pos + 1].tolist())
        rows.append({"example": int(ex), "position": int(pos), "token": ctx[-1],
                     "context": " ".join(ctx), "token_share": counts[ctx[-1]] / len(hits)})  # fmt: skip
    return pd.DataFrame(rows, columns=["example", "position", "token", "context", "token_share"])


def fsm_state_labels(examples) -> np.ndarray:
    """(n, 1 + length) hidden state at each model position of fsm walks: position 0 (BOS) holds
    the start state, position i the state after the i-th token (the store's row label `state`,
    shifted by the BOS)."""
    start = np.array([e.labels["start_state"] for e in examples])[:, None]
    return np.concatenate([start, np.array([e.word_labels["state"] for e in examples])], axis=1)


def example_labels(examples, name: str, width: int) -> np.ndarray:
    """(n, width) an example label (e.g. grammar-lm `topic`) broadcast over every position."""
    try:
        values = np.array([e.labels[name] for e in examples])
    except KeyError as exc:
        raise InputError(
            f"no example label {name!r}; labels: {sorted(examples[0].labels)}"
        ) from exc
    return np.repeat(values[:, None], width, axis=1)


def reference_codes(handle, books, n_examples: int = 200, dataset: str | None = None):
    """(examples, ids, codes by site) of a saved codebook model on `n_examples` walks/texts of
    its finetuning dataset drawn with seed 2 (neither the training seed 0 nor the eval seed 1)."""
    from workbench.data import load_dataset

    name = dataset or books.report.get("dataset")
    if not name:
        raise InputError("the codebook model records no dataset: pass one")
    examples = load_dataset(name, n_examples, seed=2)
    ids, mask = encode_examples(handle, examples)
    return examples, ids, collect_codes(handle, books, ids, mask)


def labels_for(examples, label: str, width: int) -> np.ndarray:
    """(n, width) per-position labels: fsm `state` (`fsm_state_labels`) or an example label."""
    if label == "state":
        return fsm_state_labels(examples)
    return example_labels(examples, label, width)


def group_codes(codes: np.ndarray, k: int, groups: int) -> list[np.ndarray]:
    """Per group, the (n, L, k) columns of codes (n, L, groups * k) that group chose
    (`CodebookLayer`: group g's codes are in columns g * k .. (g + 1) * k - 1)."""
    if codes.shape[-1] != k * groups:
        raise InputError(f"codes hold {codes.shape[-1]} columns, not k * groups = {k * groups}")
    return [codes[..., g * k : (g + 1) * k] for g in range(groups)]


def purity_summary(table: pd.DataFrame) -> dict[str, Any]:
    """{"mean_precision", "mean_recall", "n_labels"} of a `purity` table."""
    return {
        "mean_precision": float(table.precision.mean()),
        "mean_recall": float(table.recall.mean()),
        "n_labels": len(table),
    }


def summarize_saved(folder, label: str | None = None, n_examples: int = 200, zoo_root=None) -> dict:
    """Statistics (and purity against `label`, if given: per site and, for grouped codebooks,
    per group, each group's codes read on their own) of the codebook model saved in `folder`:
    {"sites", "groups", "codes_per_group", "with_codebooks", "without_codebooks",
    "statistics", "purity"} as JSON-ready values."""
    handle, books = load_codebook_model(folder, zoo_root=zoo_root)
    examples, ids, codes = reference_codes(handle, books, n_examples)
    out: dict[str, Any] = {
        "sites": books.sites,
        "groups": books.groups,
        "codes_per_group": books.codes_per_group,
        "with_codebooks": books.report.get("with_codebooks"),
        "without_codebooks": books.report.get("without_codebooks"),
        "statistics": code_statistics(codes, books.n_codes).to_dict(orient="records"),
    }
    if label:
        labels = labels_for(examples, label, ids.shape[1])
        out["purity"] = {}
        for site, c in codes.items():
            out["purity"][site] = purity_summary(purity(c, labels, books.n_codes))
            if books.groups > 1:
                out["purity"][site]["groups"] = [
                    {"group": g, **purity_summary(purity(part, labels, books.n_codes))}
                    for g, part in enumerate(group_codes(c, books.k, books.groups))
                ]
    return out
