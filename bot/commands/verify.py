"""`xsabot verify [MANIFEST | --branch BRANCH]`: rebuild a published branch independently and
say `verified`, or exactly what differs (exit 1)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.main import Context
from bot.cli.progress import Progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "--mirror here also takes a bare PATH, URL or the name of a remote of the git "
        "repository in the working directory (default: the configured mirror). Exit status: "
        "0 verified, 1 something differs, 2 usage or environment."
    )
    parser.add_argument(
        "manifest",
        type=Path,
        nargs="?",
        help="the manifest file (default: the one the branch's build record names, in --manifests)",
    )
    parser.add_argument(
        "--branch",
        help="the published branch to verify, e.g. xsa/4.19, instead of MANIFEST "
        "(default: none; one of the two is required)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.verify import verify

    # A bare `--mirror PATH_OR_URL_OR_REMOTE` is the mirror to verify; `TREE=...` as elsewhere.
    bare = [value for name, value in args.mirror if not name]
    args.mirror = [(name, value) for name, value in args.mirror if name]
    verdict = verify(
        ctx.config,
        args.manifest,
        branch=args.branch,
        mirror=bare[-1] if bare else None,
        progress=Progress(),
    )
    for note in verdict.notes:
        print(f"{verdict.branch}: note: {note}")
    if verdict.verified:
        print(f"{verdict.branch}: verified: {verdict.how} {verdict.build}")
        print(f"  mirror {verdict.mirror}, tip {verdict.tip}, manifest {verdict.manifest}")
        return 0
    print(f"{verdict.branch}: DIFFERS from its rebuild (manifest {verdict.manifest})")
    print(f"  mirror {verdict.mirror}, tip {verdict.tip or 'none'}, rebuilt {verdict.build or '-'}")
    for difference in verdict.differences:
        print(f"  - {difference}")
    return 1
