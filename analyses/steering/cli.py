"""`workbench steer extract|apply|sweep`: activation steering from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from analyses.steering.reads import DEFAULT_READ
from analyses.steering.report import CONTROL_RATIO, EFFECT_FLOOR
from workbench.errors import InputError


def add_parser(sub: Any) -> None:
    from workbench.cli.main import model_args

    p = sub.add_parser(
        "steer",
        help="extract, apply and sweep steering vectors",
        description="Activation steering: extract a direction from contrasting inputs, apply it "
        "during generation, sweep sites x coefficients against a random control.",
    )
    verbs = p.add_subparsers(dest="steer_command", required=True, metavar="ACTION")

    e = verbs.add_parser("extract", help="extract a direction per site into --out")
    e.add_argument("--model", help="zoo name (toy-lm[@STEP]), minilm, folder...")
    e.add_argument("--sites", help="site names or patterns, comma separated")
    e.add_argument("--from-probe", help="a probe direction file (probes.directions)")
    _dictionary_args(e)
    e.add_argument("--method", default="mean-diff", choices=["mean-diff", "pca", "actadd"])
    e.add_argument("--positive", action="append", default=[], help="a positive text (repeat)")
    e.add_argument("--negative", action="append", default=[], help="a negative text (repeat)")
    e.add_argument("--positive-file", help="positive texts, one per line")
    e.add_argument("--negative-file", help="negative texts, one per line")
    e.add_argument("--dataset", help="take the two sets from a dataset's example label")
    e.add_argument("--label", help="example label of --dataset (e.g. sentiment, topic, class)")
    e.add_argument("--positive-value", type=int, help="label value of the positive set")
    e.add_argument(
        "--negative-value", type=int, help="label value of the negative set (default: any other)"
    )
    e.add_argument("--n-examples", type=int, default=400)
    e.add_argument(
        "--read",
        default=DEFAULT_READ,
        help="token positions each input is read at: content-mean (default), last-content, "
        "last, mean, all, or an int position. content-mean averages the tokens that are not "
        "punctuation (a token whose decoded text is only punctuation/whitespace, or a special "
        "token): texts end in a full stop, and 'last' reads it, where the concept has not "
        "arrived at the early blocks (on the zoo's toy-lm the block-0 difference is exactly "
        "zero); measured on toy-lm, content-mean beats last-content at every block "
        "(benchmarks/RESULTS.md, 'Steering defaults')",
    )
    e.add_argument("--out", required=True, help="directory for <site>.safetensors (+ .json)")
    model_args(e)

    a = verbs.add_parser("apply", help="generate with and without a vector")
    a.add_argument("--model", required=True)
    a.add_argument("--vector", required=True, help="a .safetensors written by extract")
    a.add_argument("--coeff", type=float, default=4.0)
    a.add_argument("--where", default="after", choices=["all", "after", "front"])
    a.add_argument("--mode", default="add", choices=["add", "project-out", "cap"])
    a.add_argument(
        "--scale",
        type=_apply_scale,
        default="auto",
        help="a number: add coeff x scale x the unit vector; typical: scale by the site's "
        "typical activation norm on the prompts; vector: the vector as saved; auto (default): "
        "typical for SAE latents and codebook codes (unit vectors), the vector as saved "
        "otherwise",
    )
    a.add_argument("--prompt", action="append", required=True, help="a prompt (repeat)")
    a.add_argument("--max-new-tokens", type=int, default=12)
    a.add_argument("--json", action="store_true")
    model_args(a)

    s = verbs.add_parser(
        "sweep",
        help="sites x coefficients with random controls",
        description="Sweep vectors over coefficients, each beside random directions of its norm. "
        "The report's best_site is the site with the largest concept effect at the largest "
        f"coefficient among those whose effect is above {EFFECT_FLOOR:g} (metric units) and at "
        f"least {CONTROL_RATIO:g}x its random-direction control; null, with a sentence saying "
        "no site moved the concept, when none is.",
    )
    s.add_argument("--model", required=True)
    s.add_argument("--vector", action="append", default=[], help="vector file (repeat)")
    s.add_argument("--vectors", help="a directory of vectors (every .safetensors in it)")
    _dictionary_args(s)
    s.add_argument(
        "--site",
        help="site of --from-sae/--from-codebook (default: the SAE's, the only codebook's)",
    )
    s.add_argument("--coeffs", default="-8,-4,0,4,8")
    s.add_argument("--prompt", action="append", default=[], help="a prompt (repeat)")
    s.add_argument("--prompt-file", help="prompts, one per line")
    s.add_argument("--target", help="target words, comma separated (language models)")
    s.add_argument("--opposite", default="", help="opposite words, comma separated")
    s.add_argument("--neutral-file", help="neutral texts for loss/KL, one per line")
    s.add_argument("--target-class", type=int, help="classifier: the class to steer toward")
    s.add_argument("--dataset", default="digits", help="classifier inputs (with --source-class)")
    s.add_argument("--source-class", type=int, help="classifier: the inputs' class")
    s.add_argument("--controls", type=int, default=2, help="random directions per site")
    s.add_argument(
        "--scale",
        default="auto",
        choices=["auto", "vector", "typical"],
        help="what a coefficient counts in. vector: the vector as saved (coefficient 1 adds it "
        "once). typical: the vector's unit direction times the site's typical activation norm "
        "(mean L2 norm over the tokens of the neutral texts, else the prompts; the classifier's "
        "inputs), so one coefficient means the same at every site. auto (default): typical for "
        "SAE-latent and codebook-code vectors (unit norm: at a transformer's middle blocks an "
        "activation is tens of units long), vector for the rest. The random controls get the "
        "same scale",
    )
    s.add_argument("--max-new-tokens", type=int, default=8)
    s.add_argument("--out", help="save the result (parquet + JSON) here")
    s.add_argument("--json", action="store_true")
    model_args(s)
    p.set_defaults(run=run)


def _dictionary_args(p: argparse.ArgumentParser) -> None:
    """--from-sae/--latent and --from-codebook/--code: a dictionary direction as the source."""
    p.add_argument("--from-sae", help="a saved SAE directory: its decoder row --latent")
    p.add_argument("--latent", type=int, help="the SAE latent whose decoder row to take")
    p.add_argument(
        "--from-codebook", help="a saved codebook model (codebook train --out): its --code"
    )
    p.add_argument("--code", type=int, help="the codebook code whose vector to take")
    p.add_argument(
        "--norm",
        default="unit",
        choices=["unit", "raw"],
        help="SAE latent / codebook code vectors: unit norm (default; a coefficient then counts "
        "in activation units, as for probe directions) or the row's own norm (recorded as "
        "raw_norm either way; a sweep's --scale auto rescales both to the site's typical norm)",
    )


def run(args: argparse.Namespace) -> int:
    return {"extract": _extract, "apply": _apply, "sweep": _sweep}[args.steer_command](args)


def _lines(path: str | None) -> list[str]:
    if not path:
        return []
    file = Path(path)
    if not file.is_file():
        raise InputError(f"text file {path!r} does not exist")
    return [line.strip() for line in file.read_text().splitlines() if line.strip()]


def _read(text: str) -> str | int:
    try:
        return int(text)
    except ValueError:
        return text


def _contrast(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.dataset:
        from analyses.steering.recipes import contrast_inputs

        if args.label is None or args.positive_value is None:
            raise InputError("--dataset needs --label and --positive-value")
        return contrast_inputs(
            args.dataset, args.label, args.positive_value, args.negative_value, args.n_examples
        )
    positive = args.positive + _lines(args.positive_file)
    negative = args.negative + _lines(args.negative_file)
    if not positive or not negative:
        raise InputError(
            "give both sets: --positive/--positive-file and --negative/--negative-file, "
            "or --dataset NAME --label L --positive-value V"
        )
    return positive, negative


def _dictionary_vector(args: argparse.Namespace, site: str | None, handle: Any) -> Any:
    """The --from-sae --latent or --from-codebook --code vector (checked against `handle`)."""
    from analyses.steering import dictionaries

    if args.from_sae and args.from_codebook:
        raise InputError("give one source: --from-sae or --from-codebook, not both")
    unit = args.norm == "unit"
    if args.from_sae:
        if args.latent is None:
            raise InputError("--from-sae needs --latent N")
        return dictionaries.from_sae(args.from_sae, args.latent, site, handle, unit)
    if args.code is None:
        raise InputError("--from-codebook needs --code N")
    return dictionaries.from_codebook(args.from_codebook, args.code, site, handle, unit)


def _extract(args: argparse.Namespace) -> int:
    from analyses.steering import extract
    from workbench.cli.commands import load_cli_model
    from workbench.sites.names import expand_sites

    out = Path(args.out)
    if args.from_probe or args.from_sae or args.from_codebook:
        if args.from_probe:
            vector = extract.from_probe(args.from_probe, args.sites)
        else:  # --model, when given, is checked against the dictionary's site and width
            handle = load_cli_model(args, args.model) if args.model else None
            vector = _dictionary_vector(args, args.sites, handle)
        path = vector.save(out / f"{vector.site}.safetensors")
        print(f"{path}  norm {vector.norm:.4g}  shape {tuple(vector.vector.shape)}")
        return 0
    if not args.model or not args.sites:
        raise InputError(
            "extract needs --model and --sites (or --from-probe / --from-sae / --from-codebook)"
        )
    handle = load_cli_model(args, args.model)
    positive, negative = _contrast(args)
    for site in expand_sites(handle.sites(), args.sites):
        if args.method == "actadd":
            if len(positive) != 1 or len(negative) != 1 or not isinstance(positive[0], str):
                raise InputError("actadd takes one --positive and one --negative prompt")
            vector = extract.actadd(handle, positive[0], negative[0], site)
        else:
            method = (
                extract.mean_difference if args.method == "mean-diff" else extract.pca_difference
            )
            vector = method(handle, positive, negative, site, _read(args.read))
        path = vector.save(out / f"{site}.safetensors")
        print(f"{path}  norm {vector.norm:.4g}  shape {tuple(vector.vector.shape)}")
    return 0


def _apply(args: argparse.Namespace) -> int:
    from analyses.steering import SteeringVector, generate
    from workbench.cli.commands import load_cli_model

    handle = load_cli_model(args, args.model)
    vector = SteeringVector.load(args.vector)
    scale = args.scale
    if isinstance(scale, str):  # auto, typical or vector: a number (or None) for this site
        scale = _scales(handle, [vector], scale, args.prompt)[vector.site]
    options = {"where": args.where, "mode": args.mode, "scale": scale}
    _, plain = generate(handle, args.prompt, None, max_new_tokens=args.max_new_tokens)
    _, steered = generate(
        handle, args.prompt, vector, args.coeff, max_new_tokens=args.max_new_tokens, **options
    )
    rows = []
    for prompt, a, b in zip(args.prompt, plain, steered, strict=True):
        rows.append(
            {
                "prompt": prompt,
                "unsteered": handle.tokenizer.decode(a, skip_special_tokens=True),
                "steered": handle.tokenizer.decode(b, skip_special_tokens=True),
            }
        )
    if args.json:
        settings = {"site": vector.site, "coeff": args.coeff, **options}
        print(json.dumps({"generations": rows, "settings": settings}))
    else:
        for row in rows:
            print(
                f"prompt:    {row['prompt']}\nunsteered: {row['unsteered']}\nsteered:   {row['steered']}\n"
            )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import pandas as pd

    from analyses.steering import SteeringVector, measure, recipes
    from workbench.analysis.results import Result
    from workbench.cli.commands import load_cli_model

    handle = load_cli_model(args, args.model)
    files = [Path(v) for v in args.vector]
    if args.vectors:
        files += sorted(Path(args.vectors).glob("*.safetensors"))
    vectors = [SteeringVector.load(f) for f in files]
    if args.from_sae or args.from_codebook:
        vectors.append(_dictionary_vector(args, args.site, handle))
    if not vectors:
        raise InputError(
            "no vectors: pass --vector FILE (repeat), --vectors DIR, --from-sae DIR --latent N "
            "or --from-codebook DIR --code N"
        )
    _one_per_site(vectors, [str(f) for f in files])
    try:
        coeffs = [float(c) for c in args.coeffs.split(",")]
    except ValueError:
        raise InputError(
            f"--coeffs takes numbers separated by commas, got {args.coeffs!r}"
        ) from None
    lm = handle.is_language_model
    neutral: list[str] = []
    prompts: list[str] = []
    inputs: Any = None
    if lm:
        prompts = args.prompt + _lines(args.prompt_file)
        if not prompts or not args.target:
            raise InputError("a language-model sweep needs --prompt/--prompt-file and --target")
        target = recipes.token_ids(handle, args.target.split(","))
        opposite = recipes.token_ids(handle, args.opposite.split(",")) if args.opposite else []
        neutral = _lines(args.neutral_file)

        def run(vector: SteeringVector) -> pd.DataFrame:
            frames = [
                measure.lm_behaviour(
                    handle,
                    vector,
                    coeffs,
                    prompts,
                    target,
                    opposite,
                    max_new_tokens=args.max_new_tokens,
                    scale=scales[vector.site],
                )  # fmt: skip
            ]
            if neutral:
                frames.append(
                    measure.lm_collateral(
                        handle, vector, coeffs, neutral, scale=scales[vector.site]
                    )
                )
            return pd.concat(frames)

        metric = "target_minus_opposite" if opposite else "target_mass"
    else:
        if args.target_class is None or args.source_class is None:
            raise InputError("a classifier sweep needs --source-class and --target-class")
        inputs, _ = recipes.contrast_inputs(args.dataset, "class", args.source_class, None, None)

        def run(vector: SteeringVector) -> pd.DataFrame:
            def fraction(out: Any) -> float:
                return float((out.argmax(-1) == args.target_class).float().mean())

            return measure.module_behaviour(
                handle, vector, coeffs, inputs, fraction, name="target_fraction",
                scale=scales[vector.site],
            )  # fmt: skip

        metric = "target_fraction"
    scales = _scales(handle, vectors, args.scale, neutral or prompts if lm else inputs)
    frame = measure.sweep(run, vectors, controls=args.controls)
    params = {
        "coeffs": coeffs, "controls": args.controls, "metric": metric, "scale": args.scale,
        "vectors": [{**_describe(v), "scale": scales[v.site]} for v in vectors],
    }  # fmt: skip
    result: Result = recipes.sweep_result(frame, "steering-sweep", params, handle)
    if args.out:
        result.save(args.out)
    if args.json:
        print(json.dumps(result.to_json(), default=str))
    else:
        table = frame[frame.metric == metric].pivot_table(
            index=["site", "direction"], columns="coeff", values="value"
        )
        print(table.to_string(float_format=lambda x: f"{x:.3f}"))
        print(result.headline["verdict"])
    return 0


def _one_per_site(vectors: list[Any], files: list[str]) -> None:
    """A sweep compares sites: refuse two vectors at one site, naming them."""
    names = files + ["the --from-sae/--from-codebook vector"] * (len(vectors) - len(files))
    seen: dict[str, str] = {}
    for vector, name in zip(vectors, names, strict=True):
        if vector.site in seen:
            raise InputError(
                f"two vectors at site {vector.site!r} ({seen[vector.site]} and {name}): a sweep "
                "compares sites, one vector each; sweep them separately"
            )
        seen[vector.site] = name


#: provenance keys that say where a vector came from (shown with the sweep)
_SOURCE_KEYS = (
    "sae", "latent", "codebook", "code", "group", "probe", "label", "label_level", "norm", "read",
    "store",
)  # fmt: skip


def _describe(vector: Any) -> dict[str, Any]:
    """A swept vector's site, method and source (the SAE latent, the code...)."""
    keys = {k: vector.provenance[k] for k in _SOURCE_KEYS if k in vector.provenance}
    return {"site": vector.site, "method": vector.method, "norm_value": vector.norm, **keys}


def _apply_scale(value: str) -> float | str:
    """`steer apply --scale`: a positive number, or auto / typical / vector (see its help)."""
    if value in ("auto", "typical", "vector"):
        return value
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a scale: give a positive number, auto, typical or vector"
        )
    return number


#: vector methods a sweep's --scale auto scales to the site's typical norm (unit-norm sources)
TYPICAL_SCALED = ("sae", "codebook")


def _scales(handle: Any, vectors: list[Any], scale: str, texts: Any) -> dict[str, float | None]:
    """site -> the `scale` passed to `steer` for its vector (None: the vector as saved)."""
    from analyses.steering.extract import typical_norm

    out: dict[str, float | None] = {}
    for vector in vectors:
        typical = scale == "typical" or (scale == "auto" and vector.method in TYPICAL_SCALED)
        out[vector.site] = typical_norm(handle, texts, vector.site) if typical else None
    return out
