"""One SAE latent as a static, self-contained HTML page: title, SAE / store / site, density, the
activation histogram (inline SVG), top-activating and quantile-sampled contexts with per-token
shading, output tokens and agreement with the store's labels. Offline (no script, no external
resource) and every token and name HTML-escaped.

The content is `latent_report`'s (computed once, shared with the app's page); this module only
renders it: `shade` (per-token shading, also used by the app's page), `feature_page` and
`export_html`.

    html = feature_page(latent_report(sae, store, site, 3, stats, w_u), sae="runs/sae/toy")
    html = feature_page_for("runs/sae/toy/features", 3)   # a `workbench sae features` report
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from analyses.sae.features import latent_report, load_feature_stats, store_unembedding
from workbench.analysis.export import html_document, svg_bars, write_text
from workbench.store import ActivationStore

STYLE = ".ctx{line-height:2;margin:.3em 0}.where{color:#888;font-size:80%;margin-right:.8em}"


def shade(tokens: list[str], acts: list[float], scale: float, focus: int | None = None) -> str:
    """HTML spans with an orange background proportional to act / scale (one context)."""
    parts = []
    for i, (token, act) in enumerate(zip(tokens, acts, strict=True)):
        alpha = 0.0 if scale <= 0 else max(0.0, min(1.0, act / scale))
        border = "border-bottom:2px solid #333;" if i == focus else ""
        parts.append(
            f'<span title="{act:.3f}" style="background:rgba(255,140,0,{alpha:.2f});{border}'
            f'padding:1px 2px;border-radius:2px">{html.escape(token)}</span>'
        )
    return " ".join(parts)


def _contexts(contexts: list[dict[str, Any]], scale: float) -> list[str]:
    out = []
    for c in contexts:
        act = c["acts"][c["focus"]]
        where = f"example {c['example']}, position {c['position']}: {act:.3f}"
        out.append(
            f"<p class='ctx'><span class='where'>{where}</span>"
            f"{shade(c['tokens'], c['acts'], scale, c['focus'])}</p>"
        )
    return out or ["<p class='meta'>This latent never fires on these rows.</p>"]


def _histogram(counts: list[int], edges: list[float]) -> str:
    tips = [
        f"activation {edges[i]:.3g} to {edges[i + 1]:.3g}: {c} rows" for i, c in enumerate(counts)
    ]
    return svg_bars(counts, tips, (f"{edges[0]:.3g}", f"{edges[-1]:.3g}"), "rows")


def _output_tokens(tokens: dict[str, list[tuple[str, float]]]) -> list[str]:
    rows = "".join(
        f"<tr><td>{html.escape(top)}</td><td>{top_v:+.3f}</td>"
        f"<td>{html.escape(bottom)}</td><td>{bottom_v:+.3f}</td></tr>"
        for (top, top_v), (bottom, bottom_v) in zip(tokens["top"], tokens["bottom"], strict=True)
    )
    return [
        "<h2>Output tokens (W_dec @ W_U)</h2>",
        "<table><tr><th>top token</th><th>logit</th><th>bottom token</th><th>logit</th></tr>"
        f"{rows}</table>",
    ]


def _labels(labels: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(labels, key=lambda r: (-r["precision"], -r["recall"]))
    rows = "".join(
        f"<tr><td>{html.escape(str(r['label']))}={r['value']}</td><td>{r['precision']:.3f}</td>"
        f"<td>{r['recall']:.3f}</td><td>{r['correlation']:+.3f}</td></tr>"
        for r in ordered
    )
    return [
        "<h2>Agreement with the store's labels</h2>",
        "<p class='meta'>precision = P(label | fires), recall = P(fires | label), r = Pearson "
        "correlation of the activation with the label's indicator.</p>",
        f"<table><tr><th>label</th><th>precision</th><th>recall</th><th>r</th></tr>{rows}</table>",
    ]


def feature_page(
    report: dict[str, Any],
    *,
    sae: str | None = None,
    store: str | None = None,
    site: str | None = None,
    title: str | None = None,
) -> str:
    """The HTML page of one latent from its `latent_report` (labels appear when the report was
    made with `stats`, output tokens when with `w_u`); `sae`, `store`, `site` are shown as
    given (e.g. paths relative to the runs directory)."""
    latent = report["latent"]
    title = title or f"Latent {latent}"
    scale = float(report["max_act"]) or 1.0
    where = [
        f"{what} <code>{html.escape(str(value))}</code>"
        for what, value in (("SAE", sae), ("store", store), ("site", site))
        if value
    ]
    body = [f"<h1>{html.escape(title)}</h1>"]
    if where:
        body.append(f"<p class='meta'>{' &middot; '.join(where)}</p>")
    body += [
        f"<p>density {report['density']:.4%} &middot; max activation {report['max_act']:.3f} "
        f"&middot; mean when active {report['mean_act']:.3f}</p>",
        "<h2>Activation histogram (active rows)</h2>",
        _histogram(*report["histogram"]),
        "<h2>Top activations</h2>",
        *_contexts(report["top_contexts"], scale),
    ]
    if report.get("quantile_contexts"):
        body.append("<h2>Quantile samples</h2>")
        for low, high, contexts in report["quantile_contexts"]:
            body.append(f"<h3>activation {low:.3f} to {high:.3f}</h3>")
            body += _contexts(contexts, scale)
    if report.get("output_tokens"):
        body += _output_tokens(report["output_tokens"])
    if report.get("labels"):
        body += _labels(report["labels"])
    return html_document(title, "\n".join(body), STYLE)


def feature_page_for(directory: str | Path, latent: int) -> str:
    """The page of `latent` from a feature report folder written by `workbench sae features`:
    its SAE, store and site are read from the report (`features.json`); output tokens when the
    store's model has an unembedding, label agreement from the report's statistics."""
    from analyses.sae import load_sae

    stats, meta = load_feature_stats(directory)
    sae, _ = load_sae(meta["sae"])
    store = ActivationStore(meta["store"])
    report = latent_report(sae, store, meta["site"], latent, stats, store_unembedding(store))
    return feature_page(report, sae=meta["sae"], store=meta["store"], site=meta["site"])


def export_html(report: dict[str, Any], path: str | Path) -> Path:
    """Write a self-contained static page for one latent (`analyses.sae.feature_page`'s layout,
    the one the app and `workbench sae feature-page` write). `report`: a `latent_report`."""
    return write_text(feature_page(report, title=report.get("title")), path)
