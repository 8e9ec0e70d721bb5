"""Per-latent feature reports: density, activation histogram, top-activating and
quantile-sampled contexts with per-token activations, output tokens through the unembedding,
and agreement with a data set's ground-truth labels.

`FeatureStats` comes from one streaming pass over a store site (memory: d_sae x top_n, plus
d_sae x label values per label) and holds, per latent j:
- `density[j]`: fraction of rows with z_j > 0; `max_act[j]`, `mean_act[j]` (mean over the rows
  where it fires);
- `top_rows[j]`, `top_values[j]`: its `top_n` largest activations and their rows;
- for each label (a store row label, or an example label broadcast to its rows) and value v:
  `precision[j, v]` = P(label = v | z_j > 0), `recall[j, v]` = P(z_j > 0 | label = v),
  F1, and the Pearson correlation of z_j with the indicator [label = v]. Rows whose label is
  negative (-1: "no label", e.g. a function word for a per-word topic label) count as "not v"
  for every v. `best_latents()` gives the latent with the highest F1 per (label, value).

Contexts (`latent_contexts`) are read back from the store: the example a row belongs to, its
tokens and the latent's activation on each (for shading). Output tokens (`output_tokens`) are
W_dec[j] @ W_U, the direct effect of the latent on the logits, ignoring the final layer norm
(as SAE dashboards do). `analyses.sae.feature_page.export_html` writes one self-contained static page per latent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analyses.sae.base import SparseAutoencoder
from analyses.sae.data import as_row_source
from analyses.sae.evaluate import check_width
from analyses.sae.metrics import density_histogram
from workbench.data.tokens import context_span
from workbench.errors import InputError


@dataclass
class LabelStats:
    """Co-occurrence of latent firing with one label's values."""

    name: str
    values: np.ndarray  # (V,) the label values (>= 0)
    precision: np.ndarray  # (d_sae, V)
    recall: np.ndarray  # (d_sae, V)
    f1: np.ndarray  # (d_sae, V)
    correlation: np.ndarray  # (d_sae, V)
    support: np.ndarray  # (V,) rows with that value


@dataclass
class FeatureStats:
    n_rows: int
    density: np.ndarray
    max_act: np.ndarray
    mean_act: np.ndarray
    top_rows: np.ndarray  # (d_sae, top_n) int64, -1 where fewer rows fired
    top_values: np.ndarray  # (d_sae, top_n)
    labels: dict[str, LabelStats] = field(default_factory=dict)
    #: label name -> the level it was read at: "token" (a row label), "example" (an example
    #: label on each of its rows) or "given" (passed as an array)
    label_levels: dict[str, str] = field(default_factory=dict)

    def best_latents(self) -> list[dict[str, Any]]:
        """Per (label, value): the latent with the highest F1 and its precision, recall."""
        rows = []
        for name, stats in self.labels.items():
            for v_index, value in enumerate(stats.values):
                j = int(np.argmax(stats.f1[:, v_index]))
                rows.append(
                    {
                        "label": name,
                        "level": self.label_levels.get(name),
                        "value": int(value),
                        "latent": j,
                        "f1": float(stats.f1[j, v_index]),
                        "precision": float(stats.precision[j, v_index]),
                        "recall": float(stats.recall[j, v_index]),
                        "correlation": float(stats.correlation[j, v_index]),
                        "support": int(stats.support[v_index]),
                    }
                )
        return rows

    def histogram(self):
        return density_histogram(self.density)


#: which store labels `feature_stats` reads: both levels, or only "token" or "example" ones
LABEL_LEVELS = ("all", "token", "example")


def store_label_levels(store: Any, label_level: str = "all") -> dict[str, str]:
    """name -> level ("token" or "example") of the store labels `store_labels` reads at
    `label_level` ("all": both levels; an example label whose name a row label also has is
    named `example:<name>`)."""
    if label_level not in LABEL_LEVELS:
        raise InputError(f"label_level {label_level!r}; valid: {', '.join(LABEL_LEVELS)}")
    rows = list(store.manifest["row_labels"]) if label_level != "example" else []
    levels = dict.fromkeys(rows, "token")
    if label_level != "token":
        for name in store.manifest["example_labels"]:
            levels[f"example:{name}" if name in levels else name] = "example"
    return levels


def store_labels(store: Any, label_level: str = "all") -> dict[str, np.ndarray]:
    """The store's labels at `label_level` (`store_label_levels`) as per-row arrays: row labels
    as they are, example labels broadcast through `example_index`."""
    levels = store_label_levels(store, label_level)
    rows = {k: v for k, v in store.row_labels().items() if levels.get(k) == "token"}
    if "example" in levels.values():
        example_index = store.example_index()
        for name, values in store.example_labels().items():
            key = name if levels.get(name) == "example" else f"example:{name}"
            rows[key] = np.asarray(values)[example_index]
    return rows


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


@torch.no_grad()
def encode_rows(sae: SparseAutoencoder, rows: np.ndarray) -> torch.Tensor:
    """(n, d_sae) float32 CPU latents of activation rows (n, d_in): the rows are encoded on the
    SAE's device and in its dtype (a GPU, bf16), the result brought back for numpy."""
    param = sae.W_enc
    x = torch.from_numpy(np.ascontiguousarray(rows)).to(device=param.device, dtype=param.dtype)
    return sae.encode(x).float().cpu()


@torch.no_grad()
def feature_stats(
    sae: SparseAutoencoder,
    data: Any,
    site: str | None = None,
    labels: dict[str, np.ndarray] | None = None,
    top_n: int = 20,
    batch_size: int = 8192,
    label_level: str = "all",
) -> FeatureStats:
    """One streaming pass of `sae` over the rows of `data` (store + site, or an array);
    `labels`: name -> (n_rows,) integer labels (default: the store's labels at `label_level`,
    "all", "token" or "example"; each label's level is kept in `FeatureStats.label_levels`)."""
    source = as_row_source(data, site)
    check_width(sae, source.d_in)
    levels: dict[str, str] = {}
    if labels is None and source.store is not None:
        levels = store_label_levels(source.store, label_level)
        labels = store_labels(source.store, label_level)
    labels = labels or {}
    n = source.n_rows
    for name, values in labels.items():
        if len(values) != n:
            raise InputError(f"label {name!r} has {len(values)} entries for {n} rows")
    d_sae = sae.d_sae
    sae.eval()
    fires = np.zeros(d_sae, np.int64)
    act_sum = np.zeros(d_sae)
    act_sq = np.zeros(d_sae)
    act_max = np.zeros(d_sae)
    top_v = torch.full((d_sae, top_n), -1.0)
    top_r = torch.full((d_sae, top_n), -1, dtype=torch.int64)
    label_values = {k: np.unique(v[v >= 0]).astype(np.int64) for k, v in labels.items()}
    both = {k: np.zeros((d_sae, len(v))) for k, v in label_values.items()}
    a_y = {k: np.zeros((d_sae, len(v))) for k, v in label_values.items()}
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        z = encode_rows(sae, source.read(slice(start, stop)))
        on = (z > 0).double()
        zd = z.double()
        fires += on.sum(0).numpy().astype(np.int64)
        act_sum += zd.sum(0).numpy()
        act_sq += zd.pow(2).sum(0).numpy()
        act_max = np.maximum(act_max, zd.max(0).values.numpy())
        k = min(top_n, stop - start)
        cand = z.T.topk(k, dim=1)
        merged = torch.cat([top_v, cand.values], 1)
        merged_rows = torch.cat([top_r, cand.indices + start], 1)
        best = merged.topk(top_n, dim=1)
        top_v, top_r = best.values, merged_rows.gather(1, best.indices)
        for name, all_values in labels.items():
            y = np.asarray(all_values[start:stop])
            onehot = torch.from_numpy(
                (y[:, None] == label_values[name][None, :]).astype(np.float64)
            )
            both[name] += (on.T @ onehot).numpy()
            a_y[name] += (zd.T @ onehot).numpy()
    top_r = torch.where(top_v > 0, top_r, -1)
    stats = FeatureStats(
        n_rows=n,
        density=fires / n,
        max_act=act_max,
        mean_act=_safe_div(act_sum, fires.astype(float)),
        top_rows=top_r.numpy(),
        top_values=np.where(top_v.numpy() > 0, top_v.numpy(), 0.0),
        label_levels={name: levels.get(name, "given") for name in labels},
    )
    for name, all_values in labels.items():
        vals = label_values[name]
        y = np.asarray(all_values)
        support = np.array([(y == v).sum() for v in vals], dtype=float)
        precision = _safe_div(both[name], fires[:, None].astype(float))
        recall = _safe_div(both[name], support[None, :])
        f1 = _safe_div(2 * precision * recall, precision + recall)
        # Pearson r of z_j with the indicator [y = v]: cov / (sd_z sd_y), from the sums.
        mean_z = act_sum / n
        var_z = act_sq / n - mean_z**2
        p = support / n
        cov = a_y[name] / n - mean_z[:, None] * p[None, :]
        sd = np.sqrt(np.clip(var_z, 0, None))[:, None] * np.sqrt(p * (1 - p))[None, :]
        stats.labels[name] = LabelStats(
            name, vals, precision, recall, f1, _safe_div(cov, sd), support
        )
    return stats


@torch.no_grad()
def latent_values(
    sae: SparseAutoencoder, data: Any, latent: int, site: str | None = None, batch_size: int = 8192
) -> np.ndarray:
    """(n_rows,) activation of one latent on every row (streamed)."""
    source = as_row_source(data, site)
    check_width(sae, source.d_in)
    if not 0 <= latent < sae.d_sae:
        raise InputError(f"latent {latent} out of range [0, {sae.d_sae})")
    sae.eval()
    out = np.empty(source.n_rows, np.float32)
    for start in range(0, source.n_rows, batch_size):
        stop = min(source.n_rows, start + batch_size)
        out[start:stop] = encode_rows(sae, source.read(slice(start, stop)))[:, latent].numpy()
    return out


def quantile_rows(values: np.ndarray, n_bins: int = 5, per_bin: int = 3, seed: int = 0):
    """[(low, high, rows)] for `n_bins` equal-count bins of the positive `values`: `per_bin`
    rows drawn (seeded) from each bin, lowest bin first."""
    rows = np.flatnonzero(values > 0)
    if not len(rows):
        return []
    order = rows[np.argsort(values[rows], kind="stable")]
    rng = np.random.default_rng(seed)
    out = []
    for part in np.array_split(order, n_bins):
        if len(part):
            pick = rng.choice(part, size=min(per_bin, len(part)), replace=False)
            out.append((float(values[part[0]]), float(values[part[-1]]), np.sort(pick)))
    return out


def token_decoder(store: Any) -> Any:
    """A function token id -> text for the store's model: its tokenizer when the store's
    provenance names a local folder that has one, else the id in angle brackets."""
    from workbench.data.tokens import store_decoder

    decode = store_decoder(store)
    if decode is not None:
        return lambda i: decode(int(i)) if i >= 0 else ""
    return lambda i: f"<{int(i)}>" if i >= 0 else ""


@torch.no_grad()
def latent_contexts(
    sae: SparseAutoencoder,
    store: Any,
    site: str,
    latent: int,
    rows: np.ndarray,
    decode: Any = None,
    window: int = 12,
) -> list[dict[str, Any]]:
    """For each row: {"row", "example", "position", "tokens", "acts", "focus"}: up to `window`
    tokens of the row's example before it and 3 after, with the latent's activation on each;
    `focus` is the index of the row's own token."""
    decode = decode or token_decoder(store)
    example_index = store.example_index()
    token_ids = store.token_ids()
    out = []
    for row in np.asarray(rows, dtype=np.int64):
        if row < 0:
            continue
        example = int(example_index[row])
        lo, hi = context_span(example_index, int(row), before=window, after=3)
        acts = encode_rows(sae, store.read(site, slice(lo, hi)))[:, latent]
        out.append(
            {
                "row": int(row),
                "example": example,
                "position": int(store.positions()[row]),
                "tokens": [decode(int(t)) for t in token_ids[lo:hi]],
                "acts": acts.numpy().astype(float).tolist(),
                "focus": int(row - lo),
            }
        )
    return out


@torch.no_grad()
def output_tokens(
    sae: SparseAutoencoder, w_u: torch.Tensor, latent: int, k: int = 10, decode: Any = None
) -> dict[str, list[tuple[str, float]]]:
    """{"top": [(token, logit)], "bottom": [...]}: the `k` largest and smallest entries of
    W_dec[latent] @ W_U (W_U: (d_model, vocab)); needs d_model == d_in."""
    from workbench.analysis.prompt import logit_effects

    if w_u.shape[0] != sae.d_in:
        raise InputError(f"W_U has d_model {w_u.shape[0]}, the SAE d_in {sae.d_in}")
    decode = decode or (lambda i: f"<{i}>")
    effect = logit_effects(sae.W_dec[latent : latent + 1].detach(), w_u, decode, k)[0]
    return {"top": effect["up"], "bottom": effect["down"]}


def activation_histogram(values: np.ndarray, n_bins: int = 30) -> tuple[list[int], list[float]]:
    """(counts, edges) of the positive `values` in `n_bins` equal-width bins from 0 to max."""
    positive = values[values > 0]
    top = float(positive.max()) if len(positive) else 1.0
    counts, edges = np.histogram(positive, bins=n_bins, range=(0.0, top))
    return counts.tolist(), edges.tolist()


def latent_report(
    sae: SparseAutoencoder,
    store: Any,
    site: str,
    latent: int,
    stats: FeatureStats | None = None,
    w_u: torch.Tensor | None = None,
    n_top: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything `feature_page.export_html` and the app show for one latent."""
    values = latent_values(sae, store, latent, site)
    decode = token_decoder(store)
    order = np.argsort(-values, kind="stable")[:n_top]
    order = order[values[order] > 0]
    report: dict[str, Any] = {
        "latent": latent,
        "density": float((values > 0).mean()),
        "max_act": float(values.max(initial=0.0)),
        "mean_act": float(values[values > 0].mean()) if (values > 0).any() else 0.0,
        "histogram": activation_histogram(values),
        "top_contexts": latent_contexts(sae, store, site, latent, order, decode),
        "quantile_contexts": [
            (lo, hi, latent_contexts(sae, store, site, latent, rows, decode))
            for lo, hi, rows in quantile_rows(values, seed=seed)
        ],
    }
    if w_u is not None:
        report["output_tokens"] = output_tokens(sae, w_u, latent, decode=decode)
    if stats is not None:
        report["labels"] = [
            {
                "label": name,
                "level": stats.label_levels.get(name),
                "value": int(v),
                "precision": float(ls.precision[latent, i]),
                "recall": float(ls.recall[latent, i]),
                "correlation": float(ls.correlation[latent, i]),
            }
            for name, ls in stats.labels.items()
            for i, v in enumerate(ls.values)
        ]
    return report


def save_feature_stats(stats: FeatureStats, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write `features.safetensors` + `features.json` (meta, label names, best latents)."""
    from analyses.sae.io import _write_json, _write_tensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        "density": stats.density,
        "max_act": stats.max_act,
        "mean_act": stats.mean_act,
        "top_values": stats.top_values,
        "top_rows": stats.top_rows.astype(np.int64),
    }
    for name, ls in stats.labels.items():
        for part in ("precision", "recall", "f1", "correlation", "values", "support"):
            tensors[f"label/{name}/{part}"] = np.asarray(getattr(ls, part))
    _write_tensors(
        directory / "features.safetensors",
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()},
    )
    _write_json(
        directory / "features.json",
        {
            "meta": meta,
            "n_rows": stats.n_rows,
            "labels": list(stats.labels),
            "label_levels": stats.label_levels,
            "best": stats.best_latents(),
        },
    )
    return directory


def load_feature_stats(directory: str | Path) -> tuple[FeatureStats, dict[str, Any]]:
    """(stats, meta) written by `save_feature_stats`."""
    import json

    from safetensors.numpy import load_file

    directory = Path(directory)
    info_path = directory / "features.json"
    if not info_path.is_file():
        raise InputError(f"{str(directory)!r} holds no feature statistics (no features.json)")
    info = json.loads(info_path.read_text())
    t = load_file(str(directory / "features.safetensors"))
    stats = FeatureStats(
        n_rows=int(info["n_rows"]),
        density=t["density"].astype(np.float64),
        max_act=t["max_act"].astype(np.float64),
        mean_act=t["mean_act"].astype(np.float64),
        top_rows=t["top_rows"].astype(np.int64),
        top_values=t["top_values"].astype(np.float64),
        label_levels=dict(info.get("label_levels", {})),
    )
    for name in info["labels"]:
        parts = {
            p: t[f"label/{name}/{p}"].astype(np.float64)
            for p in ("precision", "recall", "f1", "correlation", "values", "support")
        }
        stats.labels[name] = LabelStats(
            name,
            parts["values"].astype(np.int64),
            parts["precision"],
            parts["recall"],
            parts["f1"],
            parts["correlation"],
            parts["support"],
        )
    return stats, info["meta"]


def store_unembedding(store: Any) -> torch.Tensor | None:
    """W_U (d_model, vocab) of the store's model when it is a causal LM in a local folder (the
    store's provenance `location`), else None (reports then have no output tokens)."""
    location = (store.provenance or {}).get("location")
    if not location or not Path(location).is_dir():
        return None
    try:
        from workbench import load_model

        handle = load_model(location, device="cpu")
    except Exception:  # noqa: BLE001 (no loadable model: no output tokens)
        return None
    w_u = getattr(handle.model, "W_U", None)
    arch = str(getattr(getattr(handle.model, "cfg", None), "architecture", ""))
    return w_u.detach() if w_u is not None and arch.endswith("CausalLM") else None
