"""`workbench codebook train|codes|steer|code-page`: codebook features from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "codebook",
        help="train, read and steer codebook features",
        description="Codebook features (Tamkin et al. 2023): finetune a model with top-k codebook "
        "bottlenecks at chosen sites, read the codes, and force codes to steer it.",
    )
    verbs = p.add_subparsers(dest="codebook_command", required=True, metavar="ACTION")

    from analyses.codebook.config import N_CODES, N_TRAIN, TRAINABLE, TrainConfig

    d = TrainConfig()
    t = verbs.add_parser(
        "train",
        help="finetune with codebooks and save them to --out",
        description="Put a codebook at each site and train it. Defaults: the codebook's "
        "LayerNorm matched to the site's scale, codes initialised by k-means on the site's "
        "activations, then the codes alone trained (model frozen) on the task + reconstruction "
        "loss. A loss that diverges stops the run (nothing saved); a loss still falling at the "
        "end is reported.",
    )
    t.add_argument("--model", default="fsm-lm", help="zoo name (fsm-lm[@STEP], toy-lm) or folder")
    t.add_argument("--sites", default="blocks.1.hook_resid_post", help="names or patterns")
    t.add_argument("--dataset", help="finetuning dataset (default: the zoo model's)")
    t.add_argument("--n-codes", type=int, default=N_CODES, help=f"codes per group ({N_CODES})")
    t.add_argument("--k", type=int, default=1, help="codes per token and group")
    t.add_argument(
        "--groups", type=int, default=1,
        help="codebooks per site, each over 1/G of the dims (must divide the width)",
    )  # fmt: skip
    t.add_argument("--steps", type=int, default=d.steps)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=d.lr, help="learning rate of the codebooks")
    t.add_argument("--model-lr", type=float, default=d.model_lr, help="with --trainable all")
    t.add_argument(
        "--trainable", default=d.trainable, choices=TRAINABLE,
        help="codes (default; LayerNorm and model frozen), codebooks (+ LayerNorm), all (+ model)",
    )  # fmt: skip
    t.add_argument("--init", default=d.init, choices=["data", "random"])
    t.add_argument("--kmeans-iters", type=int, default=d.kmeans_iters, help="with --init data")
    t.add_argument(
        "--replace-every", type=int, default=d.replace_every, help="dead-code replacement (0 = off)"
    )
    t.add_argument("--n-train", type=int, default=N_TRAIN, help="training examples")
    t.add_argument("--n-eval", type=int, default=100)
    t.add_argument("--out", required=True, help="folder for codebooks.safetensors + codebook.json")
    t.add_argument("--zoo-root")
    t.add_argument("--json", action="store_true")

    c = verbs.add_parser("codes", help="code statistics and purity of a saved codebook model")
    c.add_argument("dir", help="a folder written by `codebook train`")
    c.add_argument("--label", help="a label for purity: fsm `state`, or an example label (topic)")
    c.add_argument("--n-examples", type=int, default=200)
    c.add_argument("--zoo-root")
    c.add_argument("--json", action="store_true")

    s = verbs.add_parser(
        "steer",
        help="force codes on/off during generation, or a topic's codes against random codes",
    )
    s.add_argument("dir", help="a folder written by `codebook train`")
    s.add_argument("--site", help="codebook site (default: the first)")
    s.add_argument("--on", default="", help="codes forced on, comma separated")
    s.add_argument("--off", default="", help="codes forced off, comma separated")
    s.add_argument("--prompt", action="append", default=[], help="a prompt (repeat)")
    s.add_argument("--max-new-tokens", type=int, default=8)
    s.add_argument("--fsm-states", action="store_true", help="measure fsm state forcing instead")
    s.add_argument(
        "--topic",
        help="force the codes most associated with this topic (grammar-lm models such as "
        "toy-lm: animals, food, sports, weather) and compare the topic shift of the "
        "generations with as many random codes",
    )
    s.add_argument("--n-forced", type=int, help="--topic: codes forced (default: k, at most 3)")
    s.add_argument("--n-random", type=int, default=5, help="--topic: random-code draws")
    s.add_argument("--n-examples", type=int, default=400, help="--topic: examples read for codes")
    s.add_argument("--zoo-root")
    s.add_argument("--json", action="store_true")

    g = verbs.add_parser("code-page", help="one code as a self-contained HTML page")
    g.add_argument("dir", help="a folder written by `codebook train`")
    g.add_argument("--code", type=int, required=True)
    g.add_argument("--site", help="codebook site (default: the first)")
    g.add_argument(
        "--label", help="labels to read the code against (default: the dataset's; 'none')"
    )
    g.add_argument("--n-examples", type=int, default=200)
    g.add_argument("--out", required=True, help="the HTML file to write")
    g.add_argument("--zoo-root")
    g.add_argument("--json", action="store_true")

    r = verbs.add_parser(
        "prompt",
        help="which codes each token of a prompt chooses, and what they mean",
        description="Run a prompt (or an example of the model's dataset) through the codebook "
        "model and print each token's codes at a site, the prompt's top codes (score per "
        "token, best-matching label on reference examples) and one token's codes with the "
        "logits each pushes up and down (C_j @ W_U).",
    )
    r.add_argument("dir", help="a folder written by `codebook train`")
    r.add_argument("--text", help="the prompt (cut to the model's context, said so)")
    r.add_argument("--example", type=int, help="use example N of the model's dataset")
    r.add_argument("--site", help="codebook site (default: the first)")
    r.add_argument("--label", help="label to read codes against (default: the dataset's; 'none')")
    r.add_argument("--n-examples", type=int, default=200, help="reference examples for labels")
    r.add_argument("--token", type=int, help="token to detail (default: the top code's peak)")
    r.add_argument("--code", type=int, help="also show this code in the table")
    r.add_argument("--top", type=int, default=10, help="codes in the table")
    r.add_argument("--zoo-root")
    r.add_argument("--json", action="store_true")
    r.set_defaults(run=_run_prompt)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    fn = {"train": _train, "codes": _codes, "steer": _steer, "code-page": _code_page}[
        args.codebook_command
    ]
    out = fn(args)
    if args.json:
        print(json.dumps(out, default=float))
    else:
        for key, value in out.items():
            print(f"{key}: {json.dumps(value, default=float)}")
    return 0


def _ints(text: str) -> list[int]:
    from workbench.errors import InputError

    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"codes must be integers separated by commas, got {text!r}") from None


def _train(args: argparse.Namespace) -> dict[str, Any]:
    from analyses.codebook.train import TrainConfig, falling_message, train_codebook_model

    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, model_lr=args.model_lr,
        trainable=args.trainable, init=args.init, kmeans_iters=args.kmeans_iters,
        replace_every=args.replace_every,
    )  # fmt: skip
    _, books = train_codebook_model(
        args.model, args.sites, args.n_codes, args.k, cfg, dataset=args.dataset,
        n_train=args.n_train, n_eval=args.n_eval, zoo_root=args.zoo_root, out=args.out,
        groups=args.groups,
    )  # fmt: skip
    report = books.report
    out = {
        "out": args.out,
        "sites": books.sites,
        "groups": books.groups,
        "without_codebooks": report["without_codebooks"],
        "with_codebooks": report["with_codebooks"],
        "train_seconds": report["train_seconds"],
        "converged": report["convergence"]["converged"],
    }
    if not out["converged"]:
        out["warning"] = falling_message(report["convergence"], cfg)
    return out


def _codes(args: argparse.Namespace) -> dict[str, Any]:
    from analyses.codebook.analysis import summarize_saved

    return summarize_saved(args.dir, args.label, args.n_examples, args.zoo_root)


def _steer(args: argparse.Namespace) -> dict[str, Any]:
    from analyses.codebook.model import load_codebook_model
    from analyses.codebook.steer import fsm_state_forcing_saved, generate_with_codes
    from workbench.errors import InputError

    handle, books = load_codebook_model(args.dir, zoo_root=args.zoo_root)
    site = args.site or books.sites[0]
    if args.fsm_states:
        return fsm_state_forcing_saved(handle, books, site)
    if args.topic is not None:
        return _steer_topic(args, handle, books, site)
    if not args.prompt:
        raise InputError("give --prompt (repeat for several) or --fsm-states")
    return generate_with_codes(
        handle, books, args.prompt, site, on=_ints(args.on), off=_ints(args.off),
        max_new_tokens=args.max_new_tokens,
    )  # fmt: skip


def _steer_topic(args: argparse.Namespace, handle: Any, books: Any, site: str) -> dict[str, Any]:
    from analyses.codebook.analysis import reference_codes
    from analyses.codebook.steer import steer_topic, topic_index
    from workbench.errors import InputError

    topic_index(args.topic, books.report.get("dataset"))  # a bad topic fails before any work
    if args.n_random < 1:
        raise InputError(f"--n-random must be >= 1, got {args.n_random}")
    examples, _, codes = reference_codes(handle, books, args.n_examples)
    result = steer_topic(
        handle, books, site, args.topic, codes[site], examples, n_forced=args.n_forced,
        n_random=args.n_random, max_new_tokens=args.max_new_tokens,
    )  # fmt: skip
    rnd = result["random"]
    result["summary"] = (
        f"forcing {len(result['codes'])} code(s) of {result['topic']!r} moves the share of "
        f"generated topic words on it by {result['shift']:+.2f} (to {result['forced_on_topic']:.2f}"
        f"); {args.n_random} draws of as many random codes: {rnd['shift_mean']:+.2f} on average, "
        f"{rnd['shift_max']:+.2f} at most" + ("" if result["beats_random"] else _no_steer(result))
    )
    layer = books.layer(site)
    if len(result["codes"]) >= layer.k * layer.groups:
        result["summary"] += (
            f"; with k={layer.k} and {layer.groups} group(s) the forced codes replace the whole "
            "site, which erases the rest of the context: train with --groups G (e.g. 8) to steer "
            "one part of it"
        )
    return result


def _code_page(args: argparse.Namespace) -> dict[str, Any]:
    from analyses.codebook.code_page import code_page_for
    from workbench.analysis.export import write_text

    page = code_page_for(args.dir, args.code, args.site, args.label, args.n_examples, args.zoo_root)
    path = write_text(page, args.out)
    return {"out": str(path), "code": args.code, "bytes": path.stat().st_size}


def _run_prompt(args: argparse.Namespace) -> int:
    from analyses.codebook.prompt import run_prompt

    run_prompt(args)
    return 0


def _no_steer(result: dict[str, Any]) -> str:
    """Why a topic steer is not a finding: no upward shift (and whether the codebooks alone
    already produce the topic), or a shift some random draw matches."""
    if result["shift"] <= 0:
        room = result["codebooks_on_topic"]
        return (
            f"; no upward shift: not steered (the codebooks alone already give {room:.2f} on it)"
            if room >= 0.5
            else "; no upward shift: not steered"
        )
    return "; the topic's codes do not beat the random control"
