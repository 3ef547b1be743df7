"""`xsabot build MANIFEST`: build one branch from its manifest and print its commits.

The last line printed is the tip: the same manifest and upstream give the same tip on any
machine, so a downstream can check a published branch (its tip is this commit, or a
pseudo-merge whose second parent is this commit) without trusting the bot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.app.branch import prepare
from bot.cli.main import Context
from bot.cli.progress import Progress
from bot.core.outcome import DOES_NOT_BUILD, Blocked
from bot.errors import UsageError
from bot.git.workrepo import is_local


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="the manifest file")
    parser.add_argument(
        "--hold-back",
        type=int,
        action="append",
        default=[],
        metavar="XSA",
        help="leave this XSA out, as the check gate did (the build record lists them as "
        "does-not-build); repeatable",
    )
    parser.add_argument(
        "--ref",
        help="also point this ref at the tip in the local upstream repository "
        "(e.g. refs/heads/xsa-check), to look at the commits there; an existing ref "
        "is refused unless --force",
    )
    parser.add_argument(
        "--force", action="store_true", help="with --ref: move the ref even if it exists"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.manifest.refname import check_ref_format

    progress = Progress()
    branch = prepare(ctx.config, args.manifest, progress)
    m = branch.loaded.manifest
    held = {
        x: Blocked(x, None, (), DOES_NOT_BUILD, "held back (--hold-back)") for x in args.hold_back
    }
    with progress.step(f"building {branch.loaded.name}"):
        result = branch.build(leave_out=held)
    base, upstream, store, work = branch.base, branch.upstream, branch.store, branch.work
    status = 0
    print(f"base {m.base} {base}")
    for outcome in result.outcomes:
        for pick in outcome.picks:
            if outcome.state != "blocked":
                mark = "already there" if pick.empty else pick.commit
                print(f"XSA-{outcome.xsa} {pick.role} {pick.source} -> {mark}")
        if outcome.blocked is not None:
            b = outcome.blocked
            if outcome.xsa not in held:  # held back on request is not a failure
                status = 1
            paths = f": {', '.join(b.paths)}" if b.paths else ""
            detail = f" ({b.detail})" if b.detail else ""
            print(f"XSA-{outcome.xsa} BLOCKED at {b.commit or 'patch'}: {b.reason}{paths}{detail}")
        elif outcome.state in ("not-affected", "declared-blocked"):
            print(f"XSA-{outcome.xsa} not applied ({outcome.state} in the manifest)")
    if args.ref:
        if not is_local(upstream):
            raise UsageError("--ref needs a local upstream repository (--upstream PATH)")
        if check_ref_format(args.ref) is not None or not args.ref.startswith("refs/"):
            raise UsageError(f"--ref {args.ref!r}: not a valid full ref name")
        store.flush()
        work.write_ref(upstream, result.tip, args.ref, replace=args.force)
    print(result.tip)
    return status
