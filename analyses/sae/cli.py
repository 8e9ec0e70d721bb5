"""`workbench sae train|eval|features|feature-page`: train an SAE on a store site or an array,
evaluate it (reconstruction metrics, optionally the loss recovered), write feature reports, and
export one latent as a static HTML page."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from workbench.errors import InputError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sae",
        help="sparse autoencoders: train, evaluate, feature reports",
        description="Train a sparse autoencoder on stored activations or an array, evaluate "
        "it, and write per-feature reports.",
    )
    sub = p.add_subparsers(dest="sae_command", required=True, metavar="ACTION")

    t = sub.add_parser("train", help="train an SAE (resumes an interrupted run in --out)")
    _data_args(t)
    t.add_argument("--arch", default="topk", help="relu, topk, batchtopk or jumprelu")
    t.add_argument("--d-sae", type=int, help="number of latents (default 8 x d_in)")
    t.add_argument(
        "--k",
        type=int,
        help="active latents per row (topk, batchtopk); default min(32, max(4, d_in // 8)): "
        "Gao et al.'s 32 once d_in >= 256, and a code 8x sparser than the input below that "
        "(k 32 on d_in 48 is nearly dense: planted directions recovered 0.60, at k 6 0.99)",
    )
    t.add_argument("--l1-coeff", type=float, default=1.0, help="L1 weight (relu)")
    t.add_argument("--decoder-norm", default="weighted", help="weighted or unit (relu)")
    t.add_argument(
        "--l0-coeff",
        type=float,
        help="L0 weight (jumprelu; default 0.02): the fraction of a row's variance a latent "
        "must explain to be worth firing (the loss is normalised MSE + this x L0); lower it "
        "for a denser, more faithful code",
    )
    t.add_argument(
        "--bandwidth",
        type=float,
        help="straight-through estimator bandwidth epsilon (jumprelu; default 0.001, in units "
        "of inputs scaled to unit mean squared norm)",
    )
    t.add_argument(
        "--init-threshold",
        type=float,
        help="initial threshold theta_0 of every latent (jumprelu; default 0.001)",
    )
    t.add_argument(
        "--batch-size",
        type=int,
        help="rows per optimiser step; default min(4096, max(64, rows // 64)): at least 64 "
        "steps per pass over the rows",
    )
    t.add_argument(
        "--epochs",
        type=float,
        help="passes over the rows; default: as many as --min-steps steps need (at least one)",
    )
    t.add_argument("--steps", type=int, help="total steps (overrides --epochs and --min-steps)")
    t.add_argument(
        "--min-steps",
        type=int,
        default=2000,
        help="fewest steps when neither --steps nor --epochs is given (the rows repeat)",
    )
    t.add_argument(
        "--lr",
        type=float,
        help="peak learning rate; default 2e-3 up to 2,000 steps, then 2e-3 * sqrt(2000 / steps), at least 4e-4. A run whose "
        "loss turns NaN or grows 5x stops and names this setting",
    )
    t.add_argument(
        "--warmup-steps", type=int, default=50, help="linear warm-up (at most 1/10 of the steps)"
    )
    t.add_argument(
        "--decay-fraction", type=float, default=0.2, help="linear decay to 0 over this fraction"
    )
    t.add_argument("--grad-clip", type=float, default=1.0)
    t.add_argument(
        "--dead-window",
        type=int,
        help="rows without firing = dead (AuxK, resampling); default min(1e6, max(batch, "
        "rows // 2))",
    )
    t.add_argument(
        "--no-resample",
        action="store_true",
        help="do not re-initialise dead latents (on by default, until half the steps are done)",
    )
    t.add_argument(
        "--normalize",
        help="none, expected_norm (E||x|| = sqrt(d_in)) or unit_mean_sq (E||x||^2 = 1); "
        "default: unit_mean_sq for jumprelu (its thresholds are in those units), none "
        "otherwise. The scale is folded into the saved SAE",
    )
    t.add_argument("--checkpoint-every", type=int, default=0)
    t.add_argument("--log-every", type=int, default=10, help="steps between log lines")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--memory-cap",
        metavar="SIZE",
        help="memory the trainer's data and model may use, e.g. 512MiB or 2GiB (two shuffle "
        "buffers, one batch, the SAE with its Adam state; not the ~300 MiB Python/torch "
        "runtime). With --store the rows stream from disk through a shuffle buffer sized from "
        "it, so memory stays flat in the store's size. Default: --acts trains from memory; a "
        "--store site streams only when its float32 rows exceed a quarter of the available "
        "memory (under a cap of that quarter)",
    )
    t.add_argument("--out", required=True, help="run directory (log, checkpoint, final SAE)")
    t.add_argument(
        "--no-resume", action="store_true", help="start over even if a checkpoint exists"
    )
    t.add_argument(
        "--saelens", action="store_true", help="also write SAELens's format to OUT/saelens"
    )
    t.add_argument(
        "--device",
        default="auto",
        help="where the SAE trains: auto (CUDA if available), cpu, cuda, cuda:N",
    )
    t.add_argument("--json", action="store_true")
    t.set_defaults(run=cmd_train)

    e = sub.add_parser("eval", help="reconstruction metrics (and optionally the loss recovered)")
    e.add_argument("--sae", required=True, help="SAE directory (ours or SAELens's)")
    _data_args(e)
    e.add_argument("--batch-size", type=int, default=8192, help="rows per evaluation batch")
    e.add_argument(
        "--loss-recovered",
        type=int,
        default=0,
        metavar="N",
        help="also splice the SAE into the store's model on N texts of the store's dataset",
    )
    e.add_argument("--ablation", default="zero", help="zero or mean (for --loss-recovered)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=cmd_eval)

    f = sub.add_parser("features", help="per-latent statistics, label agreement, HTML pages")
    f.add_argument("--sae", required=True)
    f.add_argument("--store", required=True)
    f.add_argument("--site", help="default: the site the SAE was trained on")
    f.add_argument("--out", required=True)
    f.add_argument("--top-n", type=int, default=20)
    f.add_argument(
        "--label-level",
        default="all",
        choices=["all", "token", "example"],
        help="which store labels to read: all (both levels; an example label that shares a "
        "row label's name is example:NAME), token (row labels) or example (example labels); "
        "each label's level is recorded in features.json",
    )
    f.add_argument(
        "--html", default="best", help="'best' (best latent per label), 'none', or ids 1,2"
    )
    f.add_argument("--json", action="store_true")
    f.set_defaults(run=cmd_features)

    g = sub.add_parser(
        "feature-page",
        help="one latent as a self-contained HTML page",
        description="Write one latent's page (density, histogram, shaded top and quantile "
        "contexts, output tokens, label agreement) from a report made by `sae features`.",
    )
    g.add_argument("--report", required=True, help="folder written by `sae features --out`")
    g.add_argument("--latent", type=int, required=True)
    g.add_argument("--out", required=True, help="the HTML file to write")
    g.add_argument("--json", action="store_true")
    g.set_defaults(run=cmd_feature_page)

    from workbench.cli.main import model_args

    r = sub.add_parser(
        "prompt",
        help="which latents fire on which token of a prompt, and what they mean",
        description="Run a prompt (or a dataset example) through MODEL, encode the SAE's site "
        "with the SAE, and print each token's strongest latent, the prompt's top latents "
        "(activation per token, best-matching label of the SAE's feature report) and one "
        "token's latents with the logits each pushes up and down (W_dec @ W_U).",
    )
    r.add_argument("--sae", required=True, help="SAE directory (ours or SAELens's)")
    r.add_argument("--model", help="zoo name (toy-lm[@STEP]) or folder; default: the SAE's")
    r.add_argument("--text", help="the prompt (cut to the model's context, said so)")
    r.add_argument("--example", type=int, help="use example N of --dataset as the prompt")
    r.add_argument("--dataset", help="dataset of --example (default: the SAE's data's)")
    r.add_argument("--site", help="default: the site the SAE was trained on")
    r.add_argument("--features", help="feature report for labels (default: SAE/features)")
    r.add_argument("--token", type=int, help="token to detail (default: the top latent's peak)")
    r.add_argument("--latent", type=int, help="also show this latent in the table")
    r.add_argument("--top", type=int, default=10, help="latents in the table")
    r.add_argument("--zoo-root")
    model_args(r)
    r.add_argument("--json", action="store_true")
    r.set_defaults(run=cmd_prompt)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--acts", help=".npy or .safetensors (rows, d_in)")
    p.add_argument("--store", help="activation store directory")
    p.add_argument("--site", help="site in the store")


def _data(
    args: argparse.Namespace, default_site: str | None = None
) -> tuple[Any, str | None, dict]:
    from workbench.analysis.sources import load_array

    if args.store and args.acts:
        raise InputError("pass either --acts FILE or --store DIR --site SITE, not both")
    if args.acts:
        return load_array(args.acts), None, {"acts": args.acts}
    if not args.store:
        raise InputError("no activations: pass --acts FILE or --store DIR --site SITE")
    from workbench.store import ActivationStore

    store = ActivationStore(args.store)
    site = args.site or default_site
    if site is None:
        raise InputError(f"--store needs --site; stored sites: {', '.join(store.sites)}")
    store.site_info(site)
    meta = {
        "store": str(store.path),
        "site": site,
        "model": store.spec.get("model"),
        "dataset": store.spec.get("dataset"),
    }
    return store, site, meta


def _print(payload: dict[str, Any], as_json: bool) -> None:
    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and not math.isfinite(v) else v

    if as_json:
        print(json.dumps({k: clean(v) for k, v in payload.items()}, default=str))
    else:
        for key, value in payload.items():
            print(f"{key:<30}{value}")


def cmd_train(args: argparse.Namespace) -> int:
    from analyses.sae import TrainConfig, save_saelens
    from analyses.sae.data import as_row_source
    from analyses.sae.trainer import train_sae
    from workbench.devices import resolve_device

    resolve_device(args.device)  # a CUDA request without CUDA fails before any data is read
    data, site, meta = _data(args)
    source = as_row_source(data, site)
    settings: dict[str, Any] = {"d_sae": args.d_sae or 8 * source.d_in, "seed": args.seed}
    if args.arch in ("topk", "batchtopk"):
        settings["k"] = (
            args.k if args.k is not None else min(32, max(4, source.d_in // 8), settings["d_sae"])
        )
    elif args.arch == "relu":
        settings.update(l1_coeff=args.l1_coeff, decoder_norm=args.decoder_norm)
    elif args.arch == "jumprelu":
        jumprelu = {
            "l0_coeff": args.l0_coeff,
            "bandwidth": args.bandwidth,
            "init_threshold": args.init_threshold,
        }
        settings.update({k: v for k, v in jumprelu.items() if v is not None})
    config = TrainConfig(
        batch_size=args.batch_size,
        epochs=args.epochs,
        n_steps=args.steps,
        min_steps=args.min_steps,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        decay_fraction=args.decay_fraction,
        grad_clip=args.grad_clip,
        dead_window_tokens=args.dead_window,
        resample=not args.no_resample,
        normalize=args.normalize,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        seed=args.seed,
        memory_cap=args.memory_cap,
    )
    sae, result = train_sae(
        source,
        args.out,
        args.arch,
        config,
        resume=not args.no_resume,
        meta=meta,
        device=args.device,
        **settings,
    )
    if args.saelens:
        from analyses.sae import load_sae

        folded, saved_meta = load_sae(args.out)
        save_saelens(folded, Path(args.out) / "saelens", saved_meta)
    resolved = {k: v for k, v in sae.config.to_dict().items() if k != "architecture"}
    _print({**result, "architecture": args.arch, **resolved}, args.json)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from analyses.sae import evaluate, load_sae

    sae, meta = load_sae(args.sae)
    data, site, _ = _data(args, default_site=meta.get("site"))
    payload: dict[str, Any] = {
        "sae": args.sae,
        "architecture": sae.config.architecture,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
    }
    payload.update(evaluate(sae, data, site, batch_size=args.batch_size))
    if args.loss_recovered:
        payload.update(_loss_recovered(sae, data, site, args))
    _print(payload, args.json)
    return 0


def _loss_recovered(sae: Any, store: Any, site: str | None, args: argparse.Namespace) -> dict:
    import numpy as np

    from analyses.sae.downstream import loss_recovered
    from workbench import load_model
    from workbench.data import load_dataset

    if site is None or not hasattr(store, "provenance"):
        raise InputError("--loss-recovered needs --store (the model and dataset come from it)")
    location = store.provenance.get("location") or store.provenance.get("source")
    handle = load_model(location, device="cpu")
    texts = [ex.text for ex in load_dataset(store.spec["dataset"], args.loss_recovered, seed=1)]
    mean = np.asarray(store.stats(site)["mean"]) if args.ablation == "mean" else None
    return loss_recovered(handle, sae, site, texts, ablation=args.ablation, mean=mean)


def cmd_features(args: argparse.Namespace) -> int:
    from analyses.sae import load_sae
    from analyses.sae.feature_page import feature_page
    from analyses.sae.features import (
        feature_stats,
        latent_report,
        save_feature_stats,
        store_unembedding,
    )
    from workbench.analysis.export import write_text
    from workbench.store import ActivationStore

    sae, meta = load_sae(args.sae)
    store = ActivationStore(args.store)
    site = args.site or meta.get("site")
    if site is None:
        raise InputError(f"pass --site; stored sites: {', '.join(store.sites)}")
    stats = feature_stats(sae, store, site, top_n=args.top_n, label_level=args.label_level)
    out = Path(args.out)
    save_feature_stats(
        stats, out, {"sae": str(Path(args.sae).resolve()), "store": str(store.path), "site": site}
    )
    if args.html == "best":
        latents = sorted({row["latent"] for row in stats.best_latents()})
    elif args.html == "none":
        latents = []
    else:
        try:
            latents = [int(x) for x in args.html.split(",") if x.strip()]
        except ValueError:
            raise InputError(
                f"--html takes 'best', 'none' or latent ids like 1,2; got {args.html!r}"
            ) from None
    w_u = store_unembedding(store)
    pages = []
    for latent in latents:
        report = latent_report(sae, store, site, latent, stats, w_u)
        page = feature_page(report, sae=args.sae, store=str(store.path), site=site)
        pages.append(str(write_text(page, out / "html" / f"latent_{latent}.html")))
    best = stats.best_latents()
    if args.json:
        print(json.dumps({"out": str(out), "best": best, "html": pages}))
    else:
        for row in best:
            print(
                f"{row['label']}={row['value']}: latent {row['latent']} precision "
                f"{row['precision']:.3f} recall {row['recall']:.3f}"
            )
        print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_feature_page(args: argparse.Namespace) -> int:
    from analyses.sae.feature_page import feature_page_for
    from workbench.analysis.export import write_text

    path = write_text(feature_page_for(args.report, args.latent), args.out)
    _print({"out": str(path), "latent": args.latent, "bytes": path.stat().st_size}, args.json)
    return 0


def cmd_prompt(args: argparse.Namespace) -> int:
    from analyses.sae.prompt import run_prompt

    run_prompt(args)
    return 0
