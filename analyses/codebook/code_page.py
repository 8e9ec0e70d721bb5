"""One codebook code as a static, self-contained HTML page: how often it fires, the tokens it
fires on, its top contexts (the firing token marked) and, when the model's dataset has
ground-truth labels, which label values it stands for. Offline, every token HTML-escaped.

`code_report` gathers the numbers from the code arrays `reference_codes` gives (the app's
Codebooks page holds the same arrays), through `analysis` (`code_usage`, `top_contexts`,
`purity`); `code_page` lays them out; `code_page_for` does both for a saved codebook model.

Label conventions are `analysis`'s: over real tokens that carry a label (>= 0), precision =
P(label = v | code fires), recall = P(code fires | label = v).
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analyses.codebook.analysis import code_usage, purity, top_contexts
from workbench.analysis.export import html_document, svg_bars
from workbench.errors import InputError

#: the ground-truth label that codes are read against, by the model's finetuning dataset
LABEL_OF_DATASET = {"fsm": "state", "grammar-lm": "topic"}

STYLE = ".ctx{font-family:monospace;margin:.2em 0}.where{color:#888;margin-right:.8em}"


def default_label(dataset: str | None) -> str | None:
    """The label to read codes against for a model finetuned on `dataset` (None: no labels)."""
    return LABEL_OF_DATASET.get(str(dataset))


def label_rows(fires: np.ndarray, labels: np.ndarray, top: int) -> list[dict[str, Any]]:
    """Precision and recall of the code for each label value it fires on (the `top` by
    precision); fires, labels: (n, L) over the same positions, -1 = no label or pad."""
    keep = labels >= 0
    fired, lab = fires[keep], labels[keep]
    n_fired = int(fired.sum())
    rows = []
    for value in np.unique(lab[fired]):
        hit = int((fired & (lab == value)).sum())
        rows.append(
            {
                "value": int(value),
                "precision": hit / n_fired,
                "recall": hit / int((lab == value).sum()),
                "tokens": hit,
            }
        )
    return sorted(rows, key=lambda r: (-r["precision"], -r["recall"]))[:top]


def code_report(
    codes: np.ndarray,
    ids: np.ndarray,
    code: int,
    tokenizer: Any,
    n_codes: int,
    *,
    labels: np.ndarray | None = None,
    label: str | None = None,
    purity_table: pd.DataFrame | None = None,
    n_contexts: int = 15,
    n_tokens: int = 12,
) -> dict[str, Any]:
    """Everything `code_page` shows for `code`. codes: (n, L, k) code ids at one site (-1 at
    pads), ids: (n, L) token ids, `labels` (n, L) ground truth named `label` (optional;
    `purity_table`: `purity(codes, labels, n_codes)` if already computed)."""
    if not 0 <= code < n_codes:
        raise InputError(f"code {code} out of range [0, {n_codes})")
    usage = code_usage(codes, n_codes)
    fires = (codes == code).any(-1) & (codes[..., 0] >= 0)
    fired_tokens = tokenizer.convert_ids_to_tokens(np.asarray(ids)[fires].tolist())
    report: dict[str, Any] = {
        "code": code,
        "n_codes": n_codes,
        "usage": float(usage[code]),
        "rank": int((usage > usage[code]).sum()) + 1,
        "n_fires": int(fires.sum()),
        "n_tokens": int((codes[..., 0] >= 0).sum()),
        "top_tokens": Counter(fired_tokens).most_common(n_tokens),
        "contexts": top_contexts(codes, ids, code, tokenizer, n=n_contexts).to_dict("records"),
    }
    if labels is not None:
        if labels.shape != fires.shape:
            raise InputError(f"labels have shape {labels.shape}, the codes {fires.shape}")
        table = purity(codes, labels, n_codes) if purity_table is None else purity_table
        report["label"] = label or "label"
        report["labels"] = label_rows(fires, labels, top=12)
        report["best_for"] = table[table.code == code].to_dict("records")
    return report


def _contexts(contexts: list[dict[str, Any]]) -> list[str]:
    out = []
    for c in contexts:
        text, token = c["context"], c["token"]
        before = text[: len(text) - len(token)]  # `context` ends with the firing token
        out.append(
            f"<p class='ctx'><span class='where'>example {c['example']}, position "
            f"{c['position']}</span>{html.escape(before)}<mark>{html.escape(token)}</mark></p>"
        )
    return out or ["<p class='meta'>This code never fires on these examples.</p>"]


def _labels(report: dict[str, Any]) -> list[str]:
    name = html.escape(report["label"])
    rows = "".join(
        f"<tr><td>{name}={r['value']}</td><td>{r['precision']:.3f}</td><td>{r['recall']:.3f}</td>"
        f"<td>{r['tokens']}</td></tr>"
        for r in report["labels"]
    )
    best = ", ".join(
        f"{name}={r['label']} (precision {r['precision']:.3f}, recall {r['recall']:.3f})"
        for r in report["best_for"]
    )
    return [
        f"<h2>Agreement with the {name} labels</h2>",
        f"<p>Best code (by F1) for: {best or 'no value'}.</p>",
        "<table><tr><th>value</th><th>precision</th><th>recall</th><th>tokens</th></tr>"
        f"{rows}</table>",
    ]


def code_page(
    report: dict[str, Any],
    *,
    model: str | None = None,
    site: str | None = None,
    title: str | None = None,
) -> str:
    """The HTML page of one code from its `code_report`; `model` (the saved codebook model's
    folder) and `site` are shown as given."""
    code = report["code"]
    title = title or f"Code {code}"
    where = [
        f"{what} <code>{html.escape(str(value))}</code>"
        for what, value in (("codebook model", model), ("site", site))
        if value
    ]
    body = [f"<h1>{html.escape(title)}</h1>"]
    if where:
        body.append(f"<p class='meta'>{' &middot; '.join(where)}</p>")
    body.append(
        f"<p>fires on {report['n_fires']} of {report['n_tokens']} tokens (usage "
        f"{report['usage']:.4%}, rank {report['rank']} of {report['n_codes']} codes)</p>"
    )
    if report["top_tokens"]:
        tokens = report["top_tokens"]
        tips = [f"{token}: {count}" for token, count in tokens]
        body += [
            "<h2>Tokens it fires on</h2>",
            svg_bars([c for _, c in tokens], tips, (tokens[0][0], tokens[-1][0]), "tokens", 24),
            "<p>" + ", ".join(f"<code>{html.escape(t)}</code> ({c})" for t, c in tokens) + "</p>",
        ]
    body += ["<h2>Top contexts</h2>", *_contexts(report["contexts"])]
    if "labels" in report:
        body += _labels(report)
    return html_document(title, "\n".join(body), STYLE)


def code_page_for(
    folder: str | Path,
    code: int,
    site: str | None = None,
    label: str | None = None,
    n_examples: int = 200,
    zoo_root: str | Path | None = None,
) -> str:
    """The page of `code` at `site` (default: the first codebook site) of the codebook model
    saved in `folder`, read on `n_examples` reference examples (`reference_codes`); labels:
    `label`, else the dataset's default (`default_label`), "none" for none."""
    from analyses.codebook.analysis import labels_for, reference_codes
    from analyses.codebook.model import load_codebook_model

    handle, books = load_codebook_model(folder, zoo_root=zoo_root)
    site = site or books.sites[0]
    books.layer(site)  # an unknown site: an error naming the codebook sites
    examples, ids, codes = reference_codes(handle, books, n_examples)
    label = label or default_label(books.report.get("dataset"))
    labels = None
    if label and label != "none":
        labels = labels_for(examples, label, ids.shape[1])
    else:
        label = None
    report = code_report(
        codes[site],
        ids.cpu().numpy(),
        code,
        handle.tokenizer,
        books.n_codes,
        labels=labels,
        label=label,
    )
    return code_page(report, model=str(folder), site=site)
