"""The verbs of the `workbench` command. Printing happens here (the CLI's output layer) and
nowhere in the library."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from workbench import console
from workbench.errors import InputError

#: Entry-point group of the web app's launcher: launch(host, port, runs, zoo_root) -> int.
APP_GROUP = "workbench.app"


def load_cli_model(args: argparse.Namespace, spec: str):
    """Load MODEL: a zoo name (`toy-lm`, `toy-lm@STEP`, built on demand) when it is not a path,
    else anything `load_model` accepts."""
    from workbench.models import load_model
    from workbench.zoo import load_series, recipes

    name, _, step = spec.partition("@")
    if name in recipes() and not Path(name).exists():
        series = load_series(name, getattr(args, "zoo_root", None))
        return series.load(
            series.resolve_step(step or "last"), device=args.device, dtype=args.dtype
        )
    return load_model(
        spec,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
        allow_download=args.allow_download,
    )


def cmd_sites(args: argparse.Namespace) -> int:
    from workbench.sites.names import expand_sites

    handle = load_cli_model(args, args.model)
    names = expand_sites(handle.sites(), args.filter) if args.filter else handle.sites()
    if args.json:
        print(json.dumps(names))
        return 0
    aliases = _alias_targets(handle)
    for name in names:
        target = aliases.get(name)
        print(f"{name}  (= {target})" if target else name)
    console.log(f"# {len(names)} sites on {handle.info.name} ({handle.info.kind})")
    return 0


def _alias_targets(handle: Any) -> dict[str, str]:
    """Alias -> the first site name of the same module (blocks.0.hook_resid_post -> blocks.0.hook_out)."""
    first: dict[int, str] = {}
    targets: dict[str, str] = {}
    for name, module in handle.site_modules.items():
        canonical = first.setdefault(id(module), name)
        if canonical != name:
            targets[name] = canonical
    return targets


def cmd_capture(args: argparse.Namespace) -> int:
    from workbench.data import load_dataset
    from workbench.sites.positions import parse_positions
    from workbench.store.capture import capture_to_store

    if args.batch_size <= 0:
        raise InputError(f"--batch-size must be positive, got {args.batch_size}")
    if args.dataset:
        examples: list[Any] = load_dataset(args.dataset, args.n_examples)
        dataset = args.dataset
    else:
        examples, dataset = list(args.text), "text-args"
    positions = parse_positions(args.positions)
    handle = load_cli_model(args, args.model)
    store = capture_to_store(
        handle,
        args.sites,
        examples,
        args.out,
        dataset=dataset,
        positions=positions,
        store_dtype=args.store_dtype,
        batch_size=args.batch_size,
        max_length=args.max_length,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(
        f"stored {store.n_rows} rows x {len(store.sites)} sites from {store.n_examples} examples in {store.path}"
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from workbench.store import ActivationStore

    store = ActivationStore(args.store, verify=args.verify)
    if args.json:
        summary = {
            "path": str(store.path),
            "spec": store.spec,
            "provenance": store.provenance,
            "n_rows": store.n_rows,
            "n_examples": store.n_examples,
            "sites": {s: store.site_info(s) for s in store.sites},
            "verified": bool(args.verify),
        }
        print(json.dumps(summary, indent=2, default=str))
        return 0
    spec = store.spec
    print(f"store     {store.path}")
    print(
        f"model     {spec.get('model')}  step={spec.get('checkpoint_step')}  weights={str(spec.get('weights_hash'))[:23]}"
    )
    print(
        f"dataset   {spec.get('dataset')}  examples={store.n_examples}  rows={store.n_rows}  positions={spec.get('positions')}"
    )
    print(f"dtype     {spec.get('dtype')}" + ("   checksums verified" if args.verify else ""))
    print(f"{'site':<34}{'width':>7}{'mean norm':>11}{'max |a|':>11}{'top dim':>9}")
    for site in store.sites:
        stats = store.stats(site)
        top = stats["topk"][0] if stats["topk"] else {}
        print(
            f"{site:<34}{store.site_info(site)['width']:>7}{stats['mean_norm']:>11.3f}"
            f"{float(max(stats['max_abs'])):>11.3f}{top.get('dim', '-'):>9}"
        )
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from workbench.analysis.registry import analyses, get_analysis

    if not args.name:
        for name, analysis in analyses().items():
            print(f"{name:<22}{analysis.summary}")
        return 0
    analysis = get_analysis(args.name)
    overrides = dict(_split_setting(item) for item in args.set)
    params = analysis.make_params(overrides)
    results = [analysis.run(source, params) for source in _sources(args)]
    for result in results:
        if args.out:
            out = Path(args.out) / (result.provenance.get("site") or "arrays")
            result.save(out)
    if args.json:
        payload = results[0].to_json() if len(results) == 1 else [r.to_json() for r in results]
        print(json.dumps(payload, default=_json_default))
    else:
        for result in results:
            print(result.to_frame().to_string(index=False))
    return 0


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _split_setting(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise InputError(f"--set takes KEY=VALUE, got {item!r}")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def _sources(args: argparse.Namespace) -> list[Any]:
    from workbench.analysis.sources import Source, load_array

    if args.store and args.acts:
        raise InputError("pass either --store (with --site) or --acts, not both")
    if args.store:
        from workbench.store import ActivationStore

        store = ActivationStore(args.store)
        store_b = ActivationStore(args.store_b) if args.store_b else None
        sites = [args.site] if args.site else store.sites
        return [Source.from_store(store, site, args.label, store_b, args.site_b) for site in sites]
    if args.store_b or args.site_b or args.label:
        raise InputError(
            "--store-b, --site-b and --label go with --store; with arrays use --acts-b and --labels"
        )
    if not args.acts:
        raise InputError("no input: pass --store DIR [--site SITE] or --acts FILE")
    source = Source(acts=load_array(args.acts), provenance={"acts": args.acts})
    if args.acts_b:
        source.acts_b = load_array(args.acts_b)
    if args.labels:
        source.labels = load_array(args.labels)
    if args.weights:
        source.weights = load_array(args.weights)
    return [source]


def cmd_demo(args: argparse.Namespace) -> int:
    import os

    from workbench.cli.demo import app_command, report_lines, run_demo

    out = Path(args.out)
    zoo_root = Path(args.zoo_root) if args.zoo_root else None
    report = run_demo(out, n_examples=args.n_examples, device=args.device, zoo_root=zoo_root)
    console.print_warning_summary()  # before the findings, so that they end the output
    if args.json:
        console.result(json.dumps(report.to_json()))
        return 0
    for line in report_lines(report):
        console.result(line)
    interactive = sys.stdin.isatty() and not os.environ.get("CI")
    if args.no_app or not interactive:
        return 0
    # The app is a plugin of the core (entry-point group `workbench.app`), found, never imported.
    launchers = entry_points(group=APP_GROUP)
    if not launchers:
        console.log(f"(app not opened: no web app is installed; run `{app_command(out)}` later)")
        return 0
    launch_app = next(iter(launchers)).load()
    console.log(f"opening the app on http://127.0.0.1:{args.port} (Ctrl-C to stop)")
    return int(launch_app(host="127.0.0.1", port=args.port, runs=out, zoo_root=zoo_root))


def cmd_zoo(args: argparse.Namespace) -> int:
    from workbench import zoo

    if args.zoo_command == "list":
        rows = zoo.list_zoo(args.root)
        if args.json:
            print(json.dumps(rows, default=str))
            return 0
        for row in rows:
            value = "-" if row["value"] is None else f"{row['value']:.4g}"
            state = "built" if row["built"] else "not built"
            verdict = {True: "meets", False: "MISSES", None: ""}[row["passed"]]
            print(
                f"{row['name']:<12}{row['dataset']:<18}{state:<11}{row['metric'] or '':<18}"
                f"{value:>9} {row['threshold']:<10}{verdict}"
            )
        return 0
    names = args.names or list(zoo.recipes())
    for name in names:
        zoo.get_recipe(name)  # fail on a bad name before any training
    for name in names:
        folder = zoo.build(name, args.root, force=args.force, quick=args.quick)
        meta = zoo.read_entry(folder) or {}
        metric = meta.get("metric")
        value = meta.get("metrics", {}).get(metric)
        verdict = "meets" if meta.get("passed") else "misses"
        print(
            f"{name}: {folder} {metric}={'-' if value is None else f'{value:.4g}'} ({verdict} "
            f"{' '.join(map(str, meta.get('threshold', [])))}, {meta.get('seconds')} s)"
        )
    return 0
