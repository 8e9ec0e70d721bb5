"""Massive activations on a live model: follow them over a checkpoint series, and ablate them.

- `track_series(series, texts)`: for each checkpoint (Pythia-style `step<N>/` folders, e.g. the
  zoo's toy-lm or Pythia itself on disk), capture the residual stream after every block on a
  fixed batch and run `MassiveDetector` per layer. A tidy frame: step, site, layer, max_abs and
  median_abs (the per-sequence max and lower median of |a| over S x d, averaged over sequences:
  Gallego-Feliciano et al. 2025, Eq. 4-8), ratio (their quotient, the paper's r_l,t), the
  largest single |a| with its dim, position and token. `fit_tracked` fits each layer's ratio.
- `ablate_massive(handle, texts, site)`: Sun et al. 2024 (section 3.2, `lib/hook.py`) set the
  massive activations at one layer's output to zero or to their mean and measure the loss; here
  the massive entries are each sequence's `per_example` largest |a| at `site` (the paper's top-1,
  2, 3), the edit goes through `workbench.hooks.intervene.Apply`, and the control edits as many
  entries drawn uniformly (seeded, `n_draws` draws) among the other real-token entries. "mean"
  writes, for an entry at (unpadded position p, dim j), the mean of that (p, j) over the batch's
  sequences that reach position p (Sun et al. use fixed means over many sequences).
- `run_job(series, texts, out)`: both, written as the files the app's Massive page reads; on
  the command line `workbench massive track SERIES --out DIR` (`analyses.massive.cli`).

Loss: mean next-token cross-entropy over real tokens (pairs of consecutive unpadded tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analyses.massive.detect import MassiveDetector
from workbench.analysis.results import Result
from workbench.errors import InputError

RESID = "blocks.*.hook_resid_post"


def layer_stats(acts: Any, site: str, decode: Any = None) -> dict[str, Any]:
    """`MassiveDetector` summary of one captured site (row mode `Activations`)."""
    x = acts.numpy(site)
    example = acts.example_index.cpu().numpy()
    position = acts.position.cpu().numpy()
    token = acts.token_ids.cpu().numpy()
    detector = MassiveDetector(x.shape[1], topk=1, max_listed=0)
    detector.update(x, np.arange(len(x)), example, position, token)
    return detector.summary(example, position, token, decode)


def track_series(
    series: Any,
    texts: Sequence[str],
    steps: Sequence[int | str] | None = None,
    sites: str = RESID,
    max_length: int = 128,
    device: str = "cpu",
) -> pd.DataFrame:
    """One row per (checkpoint step, layer) on the fixed batch `texts` (see the module
    docstring). Columns: step, site, layer, max_abs, median_abs, ratio, top_abs,
    top_ratio_to_median, top_dim, top_position, top_token.

    `series`: a `CheckpointSeries`, a zoo name or a folder of step<N>/ checkpoints; `steps`:
    ints, "first", "last" (default: all), visited in ascending order, one loaded at a time."""
    from workbench.analysis.checkpoints import as_series, iter_checkpoints
    from workbench.hooks.capture import capture
    from workbench.sites.names import layer_index

    series = as_series(series)
    if not texts:
        raise InputError("track_series needs a non-empty batch of texts")
    rows = []
    for step, handle in iter_checkpoints(series, steps, device=device):
        acts = capture(handle, sites, list(texts), positions="all", max_length=max_length)
        tokenizer = handle.tokenizer
        for site in acts.sites:
            decode = (lambda t, tok=tokenizer: tok.decode([t])) if tokenizer else None
            s = layer_stats(acts, site, decode)
            top = s["top_values"][0]
            rows.append(
                {
                    "step": step,
                    "site": site,
                    "layer": layer_index(site),
                    "max_abs": s["mean_sequence_max_abs"],
                    "median_abs": s["mean_sequence_median_abs"],
                    "ratio": s["sequence_ratio"],
                    "top_abs": top["abs"],
                    "top_ratio_to_median": top["ratio_to_median"],
                    "top_dim": top["dim"],
                    "top_position": top.get("position"),
                    "top_token": top.get("token", top.get("token_id")),
                }
            )
        del handle, acts
    return pd.DataFrame(rows)


def fit_tracked(frame: pd.DataFrame, metric: str = "ratio", params: Any = None) -> Result:
    """`massive-fit` of each layer's `metric` over steps in a `track_series` frame."""
    from analyses.massive.analyses import fit_trajectories

    if metric not in frame.columns:
        raise InputError(f"no column {metric!r} in the tracked frame; has {list(frame.columns)}")
    trajectory = frame[["step", metric, "layer"]].rename(columns={metric: "value"})
    return fit_trajectories(trajectory, params, {"tracked_metric": metric})


# --------------------------------------------------------------------------- ablation
def _next_token_loss(handle: Any, batch: Any) -> float:
    """Mean next-token cross-entropy over consecutive real tokens of a left-padded batch."""
    from workbench.models.losses import next_token_nll

    nll, valid = next_token_nll(handle, batch)
    return float(nll[valid].sum() / valid.sum().clamp(min=1))


def massive_entries(acts: Any, mask: Any, per_example: int) -> Any:
    """(n, 3) long tensor of (example, padded position, dim): each example's `per_example`
    largest |a| over its real tokens, from raw site output `acts` (B, P, d)."""
    import torch

    a = acts.abs().masked_fill(~mask[..., None], -1.0)
    flat = a.flatten(1)
    top = flat.topk(per_example, dim=1).indices  # (B, k)
    b = torch.arange(a.shape[0]).repeat_interleave(per_example)
    pos, dim = top.flatten() // a.shape[2], top.flatten() % a.shape[2]
    return torch.stack([b, pos, dim], dim=1)


def _random_entries(mask: Any, width: int, exclude: Any, per_example: int, gen: Any) -> Any:
    """Per example, `per_example` distinct real-token entries not in `exclude`, uniformly."""
    import torch

    chosen = []
    taken = {tuple(e) for e in exclude.tolist()}
    for b in range(mask.shape[0]):
        real = torch.nonzero(mask[b]).flatten()
        picked: list[tuple[int, int, int]] = []
        while len(picked) < per_example:
            i = int(torch.randint(len(real) * width, (1,), generator=gen))
            entry = (b, int(real[i // width]), i % width)
            if entry not in taken and entry not in picked:
                picked.append(entry)
        chosen += picked
    return torch.tensor(chosen, dtype=torch.long)


def _replacement(acts: Any, mask: Any, entries: Any, mode: str) -> Any:
    """Values written at `entries`: 0, or the mean over sequences of the same (unpadded
    position, dim)."""
    import torch

    if mode == "zero":
        return torch.zeros(len(entries), dtype=acts.dtype)
    pad = (~mask).sum(1)  # left padding: unpadded position = padded position - pad
    values = []
    for b, p, d in entries.tolist():
        unpadded = p - int(pad[b])
        rows = torch.nonzero(mask.sum(1) > unpadded).flatten()
        values.append(acts[rows, pad[rows] + unpadded, d].mean())
    return torch.stack(values).to(acts.dtype)


def ablate_massive(
    handle: Any,
    texts: Sequence[str],
    site: str,
    per_example: int = 2,
    modes: Sequence[str] = ("zero", "mean"),
    n_draws: int = 5,
    seed: int = 0,
    max_length: int = 128,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Loss change when the massive entries at `site` are set to zero or their mean, against
    the same edit on as many random entries (see the module docstring).

    Returns (losses, entries): `losses` has one row per (mode, target in {massive, random},
    draw) with loss, delta_loss (vs the clean loss) and n_entries; `entries` lists the massive
    entries (example, position, dim, value, abs, ratio_to_median of the token's hidden state).
    """
    import torch

    from analyses.logit_lens.api import is_causal_lm
    from workbench.hooks.capture import capture
    from workbench.hooks.intervene import Apply, intervene

    if not is_causal_lm(handle):
        raise InputError(
            f"the ablation measures next-token loss; {handle.info.name!r} is not a causal LM"
        )
    for mode in modes:
        if mode not in ("zero", "mean"):
            raise InputError(f"ablation mode {mode!r}; valid: zero, mean")
    if per_example < 1 or n_draws < 1:
        raise InputError(f"per_example and n_draws must be >= 1; got {per_example}, {n_draws}")
    batch = handle.prepare(list(texts), max_length=max_length)
    acts = capture(handle, site, batch, positions=None)[site].float().cpu()
    mask = batch.attention_mask.bool().cpu()
    massive = massive_entries(acts, mask, per_example)
    gen = torch.Generator().manual_seed(seed)
    controls = [
        _random_entries(mask, acts.shape[2], massive, per_example, gen) for _ in range(n_draws)
    ]
    clean = _next_token_loss(handle, batch)
    rows = []
    for mode in modes:
        for target, draws in (("massive", [massive]), ("random", controls)):
            for draw, entries in enumerate(draws):
                values = _replacement(acts, mask, entries, mode)
                b, p, d = entries.T

                def edit(x, b=b, p=p, d=d, values=values):
                    x = x.clone()
                    x[b, p, d] = values.to(x.dtype).to(x.device)
                    return x

                with intervene(handle, Apply(site, edit)):
                    loss = _next_token_loss(handle, batch)
                rows.append(
                    {
                        "site": site,
                        "mode": mode,
                        "target": target,
                        "draw": draw,
                        "n_entries": len(entries),
                        "loss": loss,
                        "clean_loss": clean,
                        "delta_loss": loss - clean,
                    }
                )
    return pd.DataFrame(rows), _describe(acts, mask, massive)


def _describe(acts: Any, mask: Any, entries: Any) -> pd.DataFrame:
    from analyses.massive.detect import lower_median

    pad = (~mask).sum(1)
    rows = []
    for b, p, d in entries.tolist():
        hidden = acts[b, p].abs().numpy()
        value = float(acts[b, p, d])
        median = float(lower_median(hidden))
        rows.append(
            {
                "example": b,
                "position": p - int(pad[b]),
                "dim": d,
                "value": value,
                "abs": abs(value),
                "ratio_to_median": abs(value) / median if median > 0 else float("inf"),
            }
        )
    return pd.DataFrame(rows)


def ablation_summary(losses: pd.DataFrame) -> pd.DataFrame:
    """Per mode: clean loss, delta for the massive entries, mean and std of the random deltas,
    and their ratio."""
    out = []
    for mode, group in losses.groupby("mode", sort=False):
        random = group[group["target"] == "random"]["delta_loss"]
        massive = float(group[group["target"] == "massive"]["delta_loss"].iloc[0])
        mean = float(random.mean())
        out.append(
            {
                "mode": mode,
                "clean_loss": float(group["clean_loss"].iloc[0]),
                "delta_massive": massive,
                "delta_random_mean": mean,
                "delta_random_std": float(random.std(ddof=1)) if len(random) > 1 else 0.0,
                "n_draws": len(random),
                "massive_over_random": massive / mean if mean != 0 else float("nan"),
            }
        )
    return pd.DataFrame(out)


def findings(trajectory: pd.DataFrame, losses: pd.DataFrame) -> dict[str, Any]:
    """What a tracking job found, as numbers a reader can check against the files.

    `layers`: per layer, the max/median ratio (`ratio`, the paper's r_l,t) at the first and last
    tracked step and its peak with the step. `ablation`: per mode, the loss change (nats) of the
    massive entries and the mean and std of the random draws, and `significant`: whether the
    massive change exceeds the random mean by more than two random stds (one sided; False with
    fewer than two draws). `sun_criterion`: whether any tracked |a| passes Sun et al.'s massive
    criterion (|a| > 100 and > 1000 x the median), read from `top_abs` and
    `top_ratio_to_median`.
    """
    layers = []
    for layer, rows in trajectory.sort_values("step").groupby("layer", sort=True):
        peak = rows.loc[rows["ratio"].idxmax()]
        layers.append(
            {
                "layer": int(layer),
                "site": str(rows["site"].iloc[0]),
                "first_step": int(rows["step"].iloc[0]),
                "first_ratio": float(rows["ratio"].iloc[0]),
                "last_step": int(rows["step"].iloc[-1]),
                "last_ratio": float(rows["ratio"].iloc[-1]),
                "peak_step": int(peak["step"]),
                "peak_ratio": float(peak["ratio"]),
            }
        )
    ablation = []
    for row in ablation_summary(losses).to_dict(orient="records"):
        spread = 2 * row["delta_random_std"]
        row["significant"] = bool(
            row["n_draws"] > 1 and row["delta_massive"] > row["delta_random_mean"] + spread
        )
        ablation.append(row)
    sun = bool(((trajectory["top_abs"] > 100) & (trajectory["top_ratio_to_median"] > 1000)).any())
    return {"layers": layers, "ablation": ablation, "sun_criterion": sun}


def finding_lines(found: dict[str, Any], site: str) -> list[str]:
    """`findings` as lines for the command line and the demo."""
    lines = [
        f"layer {x['layer']}: max/median {x['first_ratio']:.1f} at step {x['first_step']} -> "
        f"{x['last_ratio']:.1f} at step {x['last_step']} (peak {x['peak_ratio']:.1f} at step "
        f"{x['peak_step']})"
        for x in found["layers"]
    ]
    if not found["sun_criterion"]:
        lines.append(
            "no entry passes Sun et al.'s massive criterion (|a| > 100 and > 1000x the median): "
            "the ablation below edits the largest entries, not massive ones in the paper's sense"
        )
    for a in found["ablation"]:
        verdict = (
            "more than random + 2 std"
            if a["significant"]
            else "within random + 2 std: no measurable effect"
        )
        lines.append(
            f"ablation ({a['mode']}) of the largest entries at {site}: loss "
            f"{a['delta_massive']:+.2e} nats ({a['delta_massive'] / a['clean_loss']:+.2%} of the "
            f"clean {a['clean_loss']:.3f}) vs random {a['delta_random_mean']:+.2e} +- "
            f"{a['delta_random_std']:.1e} ({a['n_draws']} draws): {verdict}"
        )
    return lines


# ------------------------------------------------------------------------------- job
JOB_FILES = ("trajectory.parquet", "ablation.parquet", "entries.parquet")


def write_outputs(
    folder: str | Path, trajectory: pd.DataFrame, losses: pd.DataFrame, entries: pd.DataFrame
) -> Path:
    """Write a tracking job's frames into `folder` (what the app's Massive page reads);
    `trajectory.parquet` last, so a folder with it is complete."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    losses.to_parquet(folder / "ablation.parquet", index=False)
    entries.to_parquet(folder / "entries.parquet", index=False)
    tmp = folder / "trajectory.parquet.tmp"
    trajectory.to_parquet(tmp, index=False)
    tmp.replace(folder / "trajectory.parquet")
    return folder


def run_job(
    series: Any,
    texts: Sequence[str],
    out: str | Path,
    site: str = "blocks.1.hook_resid_post",
    steps: Sequence[int | str] | None = None,
    n_draws: int = 5,
) -> Path:
    """Track `series` on `texts`, ablate the massive entries at `site` of its last checkpoint,
    and write the frames into `out` (e.g. `<runs>/massive/toy-lm`)."""
    from workbench.analysis.checkpoints import as_series

    series = as_series(series)
    trajectory = track_series(series, texts, steps=steps)
    handle = series.load(series.steps[-1], device="cpu")
    losses, entries = ablate_massive(handle, texts, site, n_draws=n_draws)
    return write_outputs(out, trajectory, losses, entries)


if __name__ == "__main__":  # `python -m analyses.massive.track ...` = `workbench massive track ...`
    import sys

    from workbench.cli.main import main

    raise SystemExit(main(["massive", "track", *sys.argv[1:]]))
