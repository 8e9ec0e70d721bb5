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

    t = verbs.add_parser("train", help="finetune with codebooks and save them to --out")
    t.add_argument("--model", default="fsm-lm", help="zoo name (fsm-lm[@STEP], toy-lm) or folder")
    t.add_argument("--sites", default="blocks.1.hook_resid_post", help="names or patterns")
    t.add_argument("--dataset", help="finetuning dataset (default: the zoo model's)")
    t.add_argument("--n-codes", type=int, default=1000)
    t.add_argument("--k", type=int, default=1)
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-2)
    t.add_argument("--trainable", default="all", choices=["codebooks", "all"])
    t.add_argument("--replace-every", type=int, default=50, help="dead-code replacement (0 = off)")
    t.add_argument("--n-train", type=int, default=500)
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

    s = verbs.add_parser("steer", help="force codes on/off during generation")
    s.add_argument("dir", help="a folder written by `codebook train`")
    s.add_argument("--site", help="codebook site (default: the first)")
    s.add_argument("--on", default="", help="codes forced on, comma separated")
    s.add_argument("--off", default="", help="codes forced off, comma separated")
    s.add_argument("--prompt", action="append", default=[], help="a prompt (repeat)")
    s.add_argument("--max-new-tokens", type=int, default=8)
    s.add_argument("--fsm-states", action="store_true", help="measure fsm state forcing instead")
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
    from analyses.codebook.train import TrainConfig, train_codebook_model

    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, trainable=args.trainable,
        replace_every=args.replace_every,
    )  # fmt: skip
    _, books = train_codebook_model(
        args.model, args.sites, args.n_codes, args.k, cfg, dataset=args.dataset,
        n_train=args.n_train, n_eval=args.n_eval, zoo_root=args.zoo_root, out=args.out,
    )  # fmt: skip
    report = books.report
    return {
        "out": args.out,
        "sites": books.sites,
        "without_codebooks": report["without_codebooks"],
        "with_codebooks": report["with_codebooks"],
        "train_seconds": report["train_seconds"],
    }


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
    if not args.prompt:
        raise InputError("give --prompt (repeat for several) or --fsm-states")
    return generate_with_codes(
        handle, books, args.prompt, site, on=_ints(args.on), off=_ints(args.off),
        max_new_tokens=args.max_new_tokens,
    )  # fmt: skip


def _code_page(args: argparse.Namespace) -> dict[str, Any]:
    from analyses.codebook.code_page import code_page_for
    from workbench.analysis.export import write_text

    page = code_page_for(args.dir, args.code, args.site, args.label, args.n_examples, args.zoo_root)
    path = write_text(page, args.out)
    return {"out": str(path), "code": args.code, "bytes": path.stat().st_size}
