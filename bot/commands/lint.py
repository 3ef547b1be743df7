"""`xsabot lint [PATH...]`: check manifests and report every problem, one per line.

Problems go to stdout as `path:line:col: field: message` (the format editors and CI annotate),
the count to stderr. Exit 0 when clean, 1 with problems, 2 when a given path is not a file.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import Problem, UsageError

if TYPE_CHECKING:
    from bot.cli.main import Context
    from bot.manifest.load import ManifestSet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="manifest files to check (default: every manifest in the manifests directory)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.manifest.load import load_manifests

    for path in args.paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file")
        if not path.is_file():
            raise UsageError(f"{path}: not a file (to check a directory, use --manifests DIR)")
    config = ctx.config
    groups: dict[Path, list[Path] | None] = {config.manifests: None}  # None: the whole directory
    if args.paths:
        groups = dict(_by_root(args.paths, config.manifests))
    results = [
        load_manifests(root, namespace=config.namespace, trees=config.trees.keys(), paths=paths)
        for root, paths in groups.items()
    ]
    return _report(results)


def _by_root(paths: list[Path], manifests: Path) -> dict[Path, list[Path]]:
    """Patch paths are relative to the manifests directory a file sits in, as for `build`:
    the configured one, or else the file's own directory (a checkout of a merge request)."""
    configured = manifests.resolve()
    groups: dict[Path, list[Path]] = defaultdict(list)
    for path in paths:
        parent = path.resolve().parent
        groups[manifests if parent == configured else parent].append(path)
    return groups


def _report(results: list[ManifestSet]) -> int:
    problems: list[Problem] = []
    checked = broken = 0
    for result in results:
        checked += len(result.loaded) + len(result.invalid)
        broken += len(result.invalid)
        for path in sorted(result.invalid):
            problems.extend(result.invalid[path])
    for problem in problems:
        print(problem)
    summary = f"{_count(checked, 'manifest')}, {_count(len(problems), 'problem')}"
    if broken:
        summary += f" in {_count(broken, 'file')}"
    print(summary, file=sys.stderr)
    return 1 if problems else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
