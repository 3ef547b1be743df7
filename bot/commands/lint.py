"""`xsabot lint [--fetch] [PATH...]`: check manifests and report every problem, one per line.

Problems go to stdout as `path:line:col: field: message` (the format editors and CI annotate),
the count and any notes to stderr. A PATH is a manifest file or a directory (every manifest in
it). Plain lint reads the files only; with `--upstream [TREE=]PATH_OR_URL` or `--fetch` it also
checks them against the upstream (see `bot/app/lint.py`). Exit 0 when clean, 1 with problems,
2 when a path does not exist or an upstream cannot be fetched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.cli.main import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="manifest files or directories to check (default: the manifests directory)",
    )
    parser.add_argument(
        "--fetch",
        action="store_true",
        help="also check against each tree's upstream (as configured, or XSABOT_UPSTREAM_<TREE>)"
        " and mirror: commits, base tag and source branch; implied by --upstream",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.lint import lint
    from bot.cli.progress import Progress

    upstream = args.fetch or bool(args.upstream)
    result = lint(ctx.config, args.paths, upstream=upstream, progress=Progress())
    for problem in result.problems:
        print(problem)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    summary = f"{_count(result.checked, 'manifest')}, {_count(len(result.problems), 'problem')}"
    if result.broken:
        summary += f" in {_count(result.broken, 'file')}"
    print(summary, file=sys.stderr)
    return result.exit_status


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
