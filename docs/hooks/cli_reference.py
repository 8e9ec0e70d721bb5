"""MkDocs hook: the command-line reference, written from `workbench`'s argument parser at build
time (`reference/cli.md` exists only in the built site; nothing generated is committed).

It walks `workbench.cli.main.build_parser()`, which already holds the verbs that analysis
packages add through the `workbench.commands` entry points, so a new verb, option or help text
appears in the reference without editing a page. Each command gets a heading with a fixed id
(`workbench-zoo-list` for `workbench zoo list`) that other pages link to.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

from mkdocs.structure.files import File, Files

PAGE = "reference/cli.md"
USAGE_WIDTH = 76  # what a code block shows without scrolling
# characters Markdown would read as markup outside a code span
_MARKUP = re.compile(r"([\\*_\[\]<>|#])")


def on_files(files: Files, config: Any) -> Files:
    """Add the generated page to the site's files (before the nav is resolved)."""
    files.append(File.generated(config, PAGE, content=cli_markdown()))
    return files


def cli_markdown() -> str:
    """The whole reference page as Markdown."""
    from workbench.cli.main import COMMAND_GROUP, build_parser

    parser = build_parser()
    origins = _verb_origins(COMMAND_GROUP)
    lines = [
        "# Command line",
        "",
        "Every verb of the `workbench` command, written from its argument parser when this site "
        "is built, so it always matches the installed version. Verbs marked *added by* come from "
        f"an analysis package through the `{COMMAND_GROUP}` entry points "
        "([Architecture](../architecture.md#entry-points)). `workbench VERB --help` prints the "
        "same text in a terminal; `python -m workbench` is the same command.",
        "",
    ]
    for path, command, aliases in _walk(parser, ("workbench",)):
        lines += _section(path, command, aliases, origins.get(path[1]) if len(path) == 2 else None)
    return "\n".join(lines) + "\n"


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...], aliases: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, tuple[str, ...]]]:
    """(command path, its parser, its aliases) for `parser` and every subcommand below it, in
    the order they were added."""
    yield path, parser, aliases
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        names: dict[int, list[str]] = {}
        for name, sub in action.choices.items():
            names.setdefault(id(sub), []).append(name)
        for choice in action._choices_actions:
            sub = action.choices[choice.dest]
            first, *others = names[id(sub)]
            yield from _walk(sub, (*path, first), tuple(others))


def _verb_origins(group: str) -> dict[str, str]:
    """Verb -> the module whose `add_parser` adds it, for the entry-point group `group`."""
    origins = {}
    for ep in entry_points(group=group):
        scratch = argparse.ArgumentParser().add_subparsers()
        ep.load()(scratch)
        for verb in scratch.choices:
            origins[verb] = ep.value.split(":")[0]
    return origins


def _section(
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    aliases: tuple[str, ...],
    origin: str | None,
) -> list[str]:
    name = " ".join(path)
    level = "#" * min(len(path) + 1, 4)
    lines = [f"{level} {name} {{#{'-'.join(path)}}}", ""]
    notes = []
    if aliases:
        notes.append("also: " + ", ".join(f"`{' '.join((*path[:-1], a))}`" for a in aliases))
    if origin:
        notes.append(f"added by `{origin}`")
    if notes:
        lines += ["*" + "; ".join(notes) + "*", ""]
    if parser.description:
        lines += [_text(parser.description), ""]
    lines += ["```text", _usage(parser), "```", ""]
    rows = [_row(parser, action) for action in parser._actions if _documented(action)]
    if rows:
        lines += ["| argument | description | default |", "|---|---|---|", *rows, ""]
    for group in parser._mutually_exclusive_groups:
        members = [_flag(a) for a in group._group_actions]
        kind = "exactly one" if group.required else "at most one"
        lines += [f"Give {kind} of {', '.join(f'`{m}`' for m in members)}.", ""]
    if parser.epilog:
        lines += [_text(parser.epilog), ""]
    return lines


def _documented(action: argparse.Action) -> bool:
    return not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and (
        action.help != argparse.SUPPRESS
    )


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    help_text = _expanded_help(parser, action)
    if action.required and action.option_strings:
        help_text = f"**required.** {help_text}".strip()
    if action.choices is not None:
        choices = ", ".join(f"`{c}`" for c in action.choices)
        help_text = f"{help_text} One of {choices}.".strip()
    return f"| `{_flag(action)}` | {help_text} | {_default(action)} |"


def _flag(action: argparse.Action) -> str:
    """`--sites SITES`, `-v, --verbose`, or a positional's metavar, as `--help` writes them."""
    metavar = _metavar(action)
    if not action.option_strings:
        return metavar
    flags = ", ".join(action.option_strings)
    return flags if action.nargs == 0 else f"{flags} {metavar}"


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        name = str(action.metavar)
    elif action.choices is not None and not action.option_strings:
        name = action.dest
    else:
        name = action.dest.upper() if action.option_strings else action.dest
    if action.nargs == "?":
        return f"[{name}]"
    if action.nargs == "*":
        return f"[{name} ...]"
    if action.nargs == "+":
        return f"{name} [{name} ...]"
    return name


def _expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text with argparse's `%(default)s`-style fields filled in, as `--help` shows."""
    if not action.help:
        return ""
    formatter = argparse.HelpFormatter(parser.prog)
    try:
        text = formatter._expand_help(action)
    except (KeyError, TypeError, ValueError):
        text = action.help
    return _text(text)


def _default(action: argparse.Action) -> str:
    default = action.default
    if (
        action.nargs == 0
        or default is None
        or default is argparse.SUPPRESS
        or default == []
        or isinstance(default, bool)
    ):
        return ""
    return f"`{default}`"


def _text(text: str) -> str:
    """Plain help text as Markdown on one line: code spans kept, markup characters escaped."""
    parts = " ".join(text.split()).split("`")
    return "`".join(part if i % 2 else _MARKUP.sub(r"\\\1", part) for i, part in enumerate(parts))
