"""The prompt-centric view of a codebook model: one prompt through the model with its codebooks
spliced in, and per token the codes it chose at a site, with what each code means and does.

- `prompt_view(handle, books, text, site, ...)`: a `workbench.analysis.prompt.PromptUnits` of
  the codes (T tokens x n_codes): a chosen code's activation is its score, the inner product
  of the normalised input with the unit code (`CodebookLayer.logits`, floored at 1e-6 so that a
  chosen code always counts as firing), 0 for the codes not chosen; the top codes labelled with
  their best-matching value of the dataset's label on reference examples (`best_labels`, the
  code page's precision and recall) and linked to the Codebooks page;
- `token_logits(view, books, handle, site, position)`: a token's codes and the tokens each code
  vector pushes up and down through the model's unembedding (C_j @ W_U, no final layer norm;
  with grouped codebooks C_j sits in its group's slice of the dims, `code_vectors`);
- `run_prompt(args)`: `workbench codebook prompt`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from analyses.codebook.code_page import default_label, label_rows
from analyses.codebook.model import lm_view
from workbench.analysis.prompt import (
    PromptUnits,
    prompt_tokens,
    token_detail,
    token_texts,
    unembedding,
)

CODES_PAGE = "Codebooks"  # the app page a code links to (its URL path name)
FLOOR = 1e-6  # the smallest activation of a chosen code


def best_labels(
    codes: np.ndarray, labels: np.ndarray, units: list[int], label: str
) -> dict[int, dict]:
    """Per code of `units`: the label value it stands for best (highest F1) over reference
    tokens, with the code page's precision = P(label = v | code fires) and recall =
    P(code fires | label = v) (`code_page`'s rows). codes: (n, L, k), -1 at pads; labels
    (n, L), -1 = no label."""
    out = {}
    real = codes[..., 0] >= 0
    for code in units:
        fires = (codes == code).any(-1) & real
        if not fires[labels >= 0].any():
            continue
        rows = label_rows(fires, labels, top=len(np.unique(labels)))
        f1 = [2 * r["precision"] * r["recall"] / (r["precision"] + r["recall"]) for r in rows]
        best = rows[int(np.argmax(f1))]
        out[int(code)] = {
            "label": f"{label}={best['value']}",
            "name": label,
            "value": best["value"],
            "precision": best["precision"],
            "recall": best["recall"],
            "f1": max(f1),
        }
    return out


@torch.no_grad()
def prompt_codes(handle: Any, books: Any, ids: torch.Tensor, site: str) -> np.ndarray:
    """(T, n_codes) activations of the codes at `site` on one sequence `ids` (1, T), every
    codebook spliced in (as the codebook model runs)."""
    layer = books.layer(site)
    books.eval()
    with handle.lock, books.insert(handle):
        lm_view(handle)(input_ids=ids, attention_mask=torch.ones_like(ids))
        chosen, z = layer.last_ids[0], layer.last_z[0]  # (T, G * k), (T, d)
        scores = layer.logits(z).gather(-1, chosen).clamp_min(FLOOR)
    acts = torch.zeros(ids.shape[1], layer.n_codes)
    acts.scatter_(1, chosen.cpu(), scores.float().cpu())
    return acts.numpy()


def code_vectors(layer: Any, codes: list[int]) -> torch.Tensor:
    """(m, d) what each code adds to the site's output when chosen, in the site's d dims: its
    row of the codebook, in its group's slice of the dims (zeros elsewhere) when the layer has
    several groups (`CodebookLayer` with `groups`)."""
    rows = layer.codebook[codes].detach()  # (m, d / groups)
    if layer.groups == 1:
        return rows
    width = rows.shape[-1]
    out = torch.zeros(len(codes), layer.d, dtype=rows.dtype, device=rows.device)
    for i, code in enumerate(codes):
        g = code // layer.codes_per_group
        out[i, g * width : (g + 1) * width] = rows[i]
    return out


def prompt_view(
    handle: Any,
    books: Any,
    text: str,
    site: str,
    *,
    reference: tuple[Any, np.ndarray, dict[str, np.ndarray]] | None = None,
    label: str | None = None,
    folder: str | None = None,
    meta: dict[str, Any] | None = None,
    pinned: list[int] | None = None,
) -> PromptUnits:
    """`text` through the codebook model (`handle` with `books`): the codes at `site`.

    reference: (examples, ids, codes by site) of `reference_codes`, with `label` (default: the
    dataset's, `default_label`) for the codes' best-matching labels; folder: the saved model's
    folder, the Codebooks page's link target (`model`, with `site` and `code`)."""
    books.layer(site)  # an unknown site: an error naming the codebook sites
    tokens = prompt_tokens(handle, text)
    view = PromptUnits(tokens, prompt_codes(handle, books, tokens.ids, site), "code")
    view.meta.update({"model": handle.info.name, "site": site, **(meta or {})})
    view.pinned = [view.check_unit(j) for j in pinned or []]
    label = label or default_label(books.report.get("dataset"))
    if reference is not None and label:
        from analyses.codebook.analysis import labels_for

        examples, ids, codes = reference
        labels = labels_for(examples, label, ids.shape[1])
        view.labels = best_labels(codes[site], labels, view.shown(50), label)
    elif reference is not None:
        view.notes.append(f"the dataset {books.report.get('dataset')!r} has no label to read")
    if folder is not None:
        view.links = {j: {"page": CODES_PAGE, "model": folder, "site": site, "code": j}
                      for j in view.shown(50)}  # fmt: skip
    return view


def token_logits(
    view: PromptUnits, books: Any, handle: Any, site: str, position: int, k: int = 8
) -> dict[str, Any]:
    """Token `position`'s codes, each with the `k` tokens its code vector pushes up and down
    through the model's unembedding (C_j @ W_U); a model without W_U, or a site narrower or
    wider than d_model, gets a sentence saying so instead."""
    w_u, why = unembedding(handle)
    layer = books.layer(site)
    return token_detail(
        view,
        position,
        lambda js: code_vectors(layer, js),
        w_u,
        lambda i: token_texts(handle, [i])[0],
        n=layer.groups * layer.k,  # the codes a token chooses
        k=k,
        why_not=why,
    )


def run_prompt(args: Any) -> PromptUnits:
    """`workbench codebook prompt DIR`: the saved codebook model, its reference codes for the
    labels (`--n-examples` examples of its dataset), the prompt; prints `print_view`."""
    from analyses.codebook.analysis import reference_codes
    from analyses.codebook.model import load_codebook_model
    from workbench.analysis.prompt import default_token, print_view, prompt_text

    handle, books = load_codebook_model(args.dir, zoo_root=args.zoo_root)
    site = args.site or books.sites[0]
    books.layer(site)
    text, labels = prompt_text(args.text, books.report.get("dataset"), args.example)
    reference = None
    if args.label != "none":
        reference = reference_codes(handle, books, args.n_examples)
    view = prompt_view(
        handle,
        books,
        text,
        site,
        reference=reference,
        label=None if args.label in (None, "none") else args.label,
        folder=str(args.dir),
        meta={"codebook": str(args.dir)},
        pinned=[] if args.code is None else [args.code],
    )
    if labels:
        view.meta["example labels"] = labels
    token = default_token(view) if args.token is None else args.token
    detail = token_logits(view, books, handle, site, token)
    print_view(view, detail, args.json, args.top)
    return view
