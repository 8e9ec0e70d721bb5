"""The documentation site: `mkdocs build --strict` passes, its command-line reference is the
parser's (every verb, alias and option, without hand edits), a link to a missing page, anchor
or Python symbol fails the build, and the README's links to its pages resolve."""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("workbench",)):
    """(path, parser) of every command and subcommand in the order `--help` lists them, and
    (path, None) for each alias (written here, not imported from the site's hook, so the two
    walks check each other)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                yield from commands(sub, (*path, choice.dest))
                for alias, other in action.choices.items():
                    if other is sub and alias != choice.dest:
                        yield (*path, alias), None


@pytest.mark.slow
def test_site_builds_strictly_and_the_cli_reference_is_the_parser(tmp_path):
    site = tmp_path / "site"
    built = mkdocs_build(ROOT / "mkdocs.yml", site)
    assert built.returncode == 0, built.stderr[-4000:]
    for page in ("index", "getting-started", "methods", "formats", "reference/api/core"):
        assert (site / f"{page}.html").is_file(), page

    page = html.unescape((site / "reference" / "cli.html").read_text())
    found = list(commands(build_parser()))
    verbs = {path[1] for path, _ in found if len(path) == 2}
    # the core's verbs and those analysis packages add through `workbench.commands`
    assert {"capture", "analyze", "batch", "sae", "steer", "massive", "app"} <= verbs
    starts = []
    for path, parser in found:
        name = " ".join(path)
        if parser is None:  # an alias: named beside its command
            assert name in page, f"alias {name!r} is not in the reference"
            continue
        anchor = f'id="{"-".join(path)}"'
        assert anchor in page, f"{name!r} has no section in the CLI reference"
        starts.append((page.index(anchor), path, parser))
    starts.sort(key=lambda s: s[0])
    assert [p for _, p, _ in starts] == [p for p, parser in found if parser is not None]
    ends = [start for start, _, _ in starts[1:]] + [len(page)]
    for (start, path, parser), end in zip(starts, ends, strict=True):
        section = page[start:end]
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue  # every verb has -h; hidden options are hidden on purpose
            for flag in action.option_strings:
                assert flag in section, f"{' '.join(path)}: {flag} is not in its section"
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.dest in section or str(action.metavar) in section


def test_a_missing_page_anchor_or_symbol_fails_the_strict_build(tmp_path):
    """The project's own settings (inherited from mkdocs.yml) on a two-page site that links
    to a page and an anchor that do not exist, and to a Python symbol that does not exist."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(
        "# Home\n\nSee [the page](missing.md), [the section](other.md#no-such-section) and "
        "[the function][workbench.store.no_such_function].\n"
    )
    (docs / "other.md").write_text("# Other\n\n## A section\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\nhooks: []\n"
        "nav:\n  - index.md\n  - other.md\n"
    )
    built = mkdocs_build(config, tmp_path / "site")
    assert built.returncode != 0
    warnings = [line for line in built.stderr.splitlines() if line.startswith("WARNING")]
    for named in ("missing.md", "no-such-section", "workbench.store.no_such_function"):
        assert any(named in line for line in warnings), (
            f"{named!r} is not a warning:\n{built.stderr}"
        )

    (docs / "other.md").write_text("# Other\n\n::: workbench.store.no_such_function\n")
    (docs / "index.md").write_text("# Home\n")
    built = mkdocs_build(config, tmp_path / "site")
    assert built.returncode != 0
    assert "workbench.store.no_such_function" in built.stderr, built.stderr[-3000:]


def test_the_readme_links_to_pages_that_exist():
    readme = (ROOT / "README.md").read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", readme)]
    local = [t for t in targets if t and "://" not in t]
    assert any(t.startswith("docs/") for t in local), "the README links to no docs page"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
