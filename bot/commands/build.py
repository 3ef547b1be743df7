"""`xsabot build MANIFEST`: build one branch from its manifest and print its commits.

The last line printed is the tip: the same manifest and upstream give the same tip on any
machine, so a downstream can check a published branch (its tip is this commit, or a
pseudo-merge whose second parent is this commit) without trusting the bot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.main import Context
from bot.cli.progress import Progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="the manifest file")
    parser.add_argument(
        "--hold-back",
        type=int,
        action="append",
        default=[],
        metavar="XSA",
        help="leave this XSA out, as the check gate did (the build record lists them as "
        "does-not-build); repeatable (default: none)",
    )
    parser.add_argument(
        "--ref",
        help="also point this ref at the tip in the local upstream repository "
        "(e.g. refs/heads/xsa-check), to look at the commits there; an existing ref "
        "is refused unless --force (default: none)",
    )
    parser.add_argument(
        "--force", action="store_true", help="with --ref: move the ref even if it exists"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.branch import build_branch

    branch, result = build_branch(
        ctx.config,
        args.manifest,
        hold_back=args.hold_back,
        ref=args.ref,
        replace_ref=args.force,
        progress=Progress(),
    )
    status = 0
    print(f"base {branch.loaded.manifest.base} {branch.base}")
    for outcome in result.outcomes:
        for pick in outcome.picks:
            if outcome.state != "blocked":
                mark = "already there" if pick.empty else pick.commit
                print(f"XSA-{outcome.xsa} {pick.role} {pick.source} -> {mark}")
        if outcome.blocked is not None:
            b = outcome.blocked
            if outcome.xsa not in args.hold_back:  # held back on request is not a failure
                status = 1
            paths = f": {', '.join(b.paths)}" if b.paths else ""
            detail = f" ({b.detail})" if b.detail else ""
            print(f"XSA-{outcome.xsa} BLOCKED at {b.commit or 'patch'}: {b.reason}{paths}{detail}")
        elif outcome.state in ("not-affected", "declared-blocked"):
            print(f"XSA-{outcome.xsa} not applied ({outcome.state} in the manifest)")
    print(result.tip)
    return status
