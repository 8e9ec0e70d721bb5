"""The prompt-centric view of an SAE (sae_vis's prompt-centric view, Neuronpedia's search by
text): one prompt through the model, its site's activations encoded by the SAE, and per token
the latents that fire, with what each latent means and does.

- `prompt_view(handle, sae, text, site, ...)`: a `workbench.analysis.prompt.PromptUnits` of
  the latents (T tokens x d_sae), the top ones labelled with their best-matching label of a
  `workbench sae features` report (`best_labels`) and linked to their feature page;
- `token_logits(view, sae, w_u, position)`: a token's strongest latents and the tokens each
  decoder row pushes up and down through the unembedding, W_dec[j] @ W_U (as the feature
  page's output tokens, `features.output_tokens`);
- `sae_prompt(...)`: both from paths and names, for `workbench sae prompt`.

An SAE read at another site than the one it was trained on, or on activations of another
width, is refused with both named. A prompt longer than the model's context is cut to it, and
the view's notes say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from analyses.sae.base import SparseAutoencoder
from analyses.sae.features import FeatureStats, encode_rows, load_feature_stats
from analyses.sae.io import sae_origin
from workbench.analysis.prompt import (
    PromptUnits,
    prompt_tokens,
    token_detail,
    token_texts,
    unembedding,
)
from workbench.errors import InputError
from workbench.hooks.capture import capture

FEATURES_PAGE = "SAE_features"  # the app page a latent links to (its URL path name)


def default_model(origin: dict[str, str | None]) -> str | None:
    """How to load the model an SAE was trained on (`sae_origin`): its zoo spec
    (`toy-lm@1000`), else the folder its store's provenance names, else the recorded name."""
    from workbench.zoo import recipes

    spec = origin["model"]
    if spec and spec.partition("@")[0] in recipes():
        return spec
    if origin["store"] and (Path(origin["store"]) / "manifest.json").is_file():
        from workbench.store import ActivationStore

        location = (ActivationStore(origin["store"]).provenance or {}).get("location")
        if location and Path(location).is_dir():
            return str(location)
    return spec


def default_dataset(origin: dict[str, str | None]) -> str | None:
    """The dataset whose examples suit an SAE's prompts (`sae_origin`): its store's, else its
    zoo model's (`toy-lm` -> grammar-lm), else None."""
    from workbench.zoo import get_recipe, recipes

    if origin["store"] and (Path(origin["store"]) / "manifest.json").is_file():
        from workbench.store import ActivationStore

        return ActivationStore(origin["store"]).spec.get("dataset")
    name = (origin["model"] or "").partition("@")[0]
    return get_recipe(name).dataset if name in recipes() else None


def best_labels(stats: FeatureStats, latents: list[int] | None = None) -> dict[int, dict]:
    """Per latent: its best-matching label value, the one of highest F1 over every label of a
    feature report (the rule `FeatureStats.best_latents` ranks latents by, read per latent),
    with its precision = P(label = v | fires) and recall = P(fires | label = v). Latents that
    never fire with any label value (F1 0) get none."""
    if not stats.labels:
        return {}
    names = [(name, int(v)) for name, ls in stats.labels.items() for v in ls.values]
    pick = np.arange(len(stats.density)) if latents is None else np.asarray(latents, int)
    f1 = np.concatenate([ls.f1[pick] for ls in stats.labels.values()], axis=1)
    precision = np.concatenate([ls.precision[pick] for ls in stats.labels.values()], axis=1)
    recall = np.concatenate([ls.recall[pick] for ls in stats.labels.values()], axis=1)
    out = {}
    for row, j in enumerate(pick):
        best = int(np.argmax(f1[row]))
        if f1[row, best] <= 0:
            continue
        name, value = names[best]
        out[int(j)] = {
            "label": f"{name}={value}",
            "name": name,
            "value": value,
            "precision": float(precision[row, best]),
            "recall": float(recall[row, best]),
            "f1": float(f1[row, best]),
        }
    return out


def check_site(trained_site: str | None, site: str) -> None:
    """Refuse to read an SAE at another site than the one it was trained on (when known)."""
    if trained_site is not None and site != trained_site:
        raise InputError(
            f"the SAE was trained on site {trained_site!r}, not {site!r}: read the prompt at "
            f"{trained_site!r}"
        )


def check_report(meta: dict[str, Any], sae_dir: str | Path | None, site: str) -> None:
    """Refuse a feature report made for another SAE or site than the view's (meta: its
    `features.json` meta)."""
    if meta.get("site") != site:
        raise InputError(
            f"the feature report was made at site {meta.get('site')!r}, the prompt is read at "
            f"{site!r}: pass the report of this SAE and site (`workbench sae features`)"
        )
    if sae_dir is not None and Path(meta.get("sae", "")).resolve() != Path(sae_dir).resolve():
        raise InputError(
            f"the feature report was made for the SAE {meta.get('sae')!r}, not {str(sae_dir)!r}"
        )


@torch.no_grad()
def prompt_view(
    handle: Any,
    sae: SparseAutoencoder,
    text: str,
    site: str,
    *,
    trained_site: str | None = None,
    stats: FeatureStats | None = None,
    report: str | None = None,
    meta: dict[str, Any] | None = None,
    pinned: list[int] | None = None,
) -> PromptUnits:
    """`text` through `handle`, the activations at `site` encoded by `sae`: a (T, d_sae) view.

    trained_site: the site the SAE was trained on (`sae_origin`); another `site` is refused.
    stats: a feature report's statistics (`load_feature_stats`) for the latents' best-matching
    labels; report: that report's folder, the feature pages' link target (the app's
    `SAE_features` page takes it as `features`, the latent as `latent`); pinned: latents the
    table shows whether or not they rank (an index out of range is an error)."""
    check_site(trained_site, site)
    tokens = prompt_tokens(handle, text)
    acts = capture(handle, site, tokens.ids, positions="all").numpy(site)  # (T, d)
    if acts.ndim != 2 or acts.shape[1] != sae.d_in:
        raise InputError(
            f"model {handle.info.name!r} gives width {acts.shape[-1]} at site {site!r}, the SAE "
            f"was trained on width {sae.d_in}: pick the model and site it was trained on"
        )
    z = encode_rows(sae, acts).numpy()
    view = PromptUnits(tokens, z, "latent", meta={"model": handle.info.name, "site": site})
    view.meta.update(meta or {})
    view.pinned = [view.check_unit(j) for j in pinned or []]
    if stats is not None:
        if len(stats.density) != sae.d_sae:
            raise InputError(
                f"the feature report has {len(stats.density)} latents, the SAE {sae.d_sae}"
            )
        view.scale = np.asarray(stats.max_act, dtype=float)  # rank by the latent's own max
    else:
        view.notes.append("no feature report: no labels (make one with `workbench sae features`)")
    shown = view.shown(50)  # after the scale: it ranks the latents
    if stats is not None:
        view.labels = best_labels(stats, shown)
    if report is not None:
        view.links = {j: {"page": FEATURES_PAGE, "features": report, "latent": j} for j in shown}
    return view


def token_logits(
    view: PromptUnits,
    sae: SparseAutoencoder,
    handle: Any,
    position: int,
    n: int = 5,
    k: int = 8,
) -> dict[str, Any]:
    """Token `position`'s `n` strongest latents, each with the `k` tokens its decoder row
    pushes up and down through the model's unembedding (W_dec[j] @ W_U, no final layer norm);
    a model without W_U gets a sentence saying so instead."""
    w_u, why = unembedding(handle)
    return token_detail(
        view,
        position,
        lambda js: sae.W_dec[js].detach(),
        w_u,
        lambda i: token_texts(handle, [i])[0],
        n=n,
        k=k,
        why_not=why,
    )


def default_report(sae_dir: str | Path) -> Path | None:
    """The feature report beside an SAE (`SAE_DIR/features`, where `workbench demo` and the
    docs write it), if there is one."""
    folder = Path(sae_dir) / "features"
    return folder if (folder / "features.json").is_file() else None


def sae_prompt(
    sae_dir: str | Path,
    handle: Any,
    text: str,
    *,
    site: str | None = None,
    features: str | Path | None = None,
    pinned: list[int] | None = None,
    loaded: tuple[SparseAutoencoder, dict[str, Any]] | None = None,
) -> tuple[PromptUnits, SparseAutoencoder]:
    """(view, sae) for `workbench sae prompt`: the SAE in `sae_dir` on `text` through
    `handle`, at `site` (default: the SAE's training site), labelled from the feature report
    `features` (default: `SAE_DIR/features` when it exists). `loaded`: (sae, meta) of
    `load_sae(sae_dir)` when the caller has it."""
    from analyses.sae import load_sae

    sae, meta = loaded if loaded is not None else load_sae(sae_dir)
    origin = sae_origin(meta)
    site = site or origin["site"]
    if site is None:
        raise InputError(f"the SAE in {str(sae_dir)!r} records no site: pass --site")
    check_site(origin["site"], site)
    report = Path(features) if features is not None else default_report(sae_dir)
    stats = None
    if report is not None:
        stats, report_meta = load_feature_stats(report)
        check_report(report_meta, sae_dir, site)
    view = prompt_view(
        handle,
        sae,
        text,
        site,
        trained_site=origin["site"],
        stats=stats,
        report=str(report) if report is not None else None,
        meta={"sae": str(sae_dir), "features": str(report) if report is not None else None},
        pinned=pinned,
    )
    if origin["model"] and origin["model"].partition("@")[0] != handle.info.name.partition("@")[0]:
        view.notes.append(
            f"the SAE was trained on activations of {origin['model']!r}, the prompt runs "
            f"through {handle.info.name!r}"
        )
    return view, sae


def run_prompt(args: Any) -> PromptUnits:
    """`workbench sae prompt`: load the SAE and the model (`--model`, default the one the SAE's
    store was captured from), read the prompt, print the view (`print_view`)."""
    from analyses.sae import load_sae
    from workbench.analysis.prompt import default_token, print_view, prompt_text
    from workbench.cli.commands import load_cli_model

    loaded = load_sae(args.sae)
    origin = sae_origin(loaded[1])
    spec = args.model or default_model(origin)
    if not spec:
        raise InputError(f"the SAE in {args.sae!r} records no model: pass --model")
    dataset = args.dataset
    if args.example is not None and dataset is None:
        dataset = default_dataset(origin)
    text, labels = prompt_text(args.text, dataset, args.example)
    handle = load_cli_model(args, spec)
    pinned = [] if args.latent is None else [args.latent]
    view, sae = sae_prompt(
        args.sae,
        handle,
        text,
        site=args.site,
        features=args.features,
        pinned=pinned,
        loaded=loaded,
    )
    if labels:
        view.meta["example labels"] = labels
    token = default_token(view) if args.token is None else args.token
    detail = token_logits(view, sae, handle, token)
    print_view(view, detail, args.json, args.top)
    return view
