"""`xsabot export (MANIFEST | --branch BRANCH) --series DIR`: a branch as a quilt patch series
for the release tarball (see `bot/app/export.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.main import Context
from bot.cli.progress import Progress
from bot.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifest",
        type=Path,
        nargs="?",
        help="build this manifest's branch and export it (or give --branch)",
    )
    parser.add_argument(
        "--branch",
        help="export this branch as published in the mirror, e.g. xsa/4.19 (default: none;"
        " give a MANIFEST or --branch)",
    )
    parser.add_argument(
        "--tree",
        default="xen",
        help="with --branch: the tree whose mirror holds it (default: %(default)s)",
    )
    parser.add_argument(
        "--series",
        type=Path,
        required=True,
        metavar="DIR",
        help="write the patches and the quilt `series` file here; made if missing, refused "
        "unless empty (required)",
    )
    parser.epilog = (
        "Apply onto the unpacked release (the base tag's tree): `QUILT_PATCHES=DIR quilt push -a`,"
        " or `patch -p1` with each file named in DIR/series, in order."
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.export import export_branch, export_manifest

    if (args.manifest is None) == (args.branch is None):
        raise UsageError("give a MANIFEST or --branch BRANCH (one of them)")
    if args.branch is not None:
        series = export_branch(ctx.config, args.tree, args.branch, args.series, Progress())
    else:
        series = export_manifest(ctx.config, args.manifest, args.series, Progress())
    for patch in series.patches:
        print(patch.name)
    print(
        f"{len(series.patches)} patches of {series.branch} onto {series.base}"
        f" ({series.base_commit[:12]}), giving {series.tip[:12]}: {series.directory}/series"
    )
    return 0
