"""`xsabot check MANIFEST`: build one branch and run its tree's check command on the tip.

The command comes from the config (`trees.<tree>.check`, `check_timeout`) or `--check
TREE=COMMAND`. Results are cached by tree: checking an unchanged branch again prints the
recorded result at once. Exit 0 when the check passes, 1 when it fails or times out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.main import Context
from bot.cli.progress import Progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # `--check TREE=COMMAND` is one of the common options (bot/cli/main.py).
    parser.add_argument("manifest", type=Path, help="the manifest file")
    parser.add_argument(
        "--timeout", type=float, help="seconds the check may take (default: the config's)"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.branch import check_command, check_tip, prepare
    from bot.core.compiler import evidence, parse_errors

    config = ctx.config
    progress = Progress()
    branch = prepare(config, args.manifest, progress)
    m = branch.loaded.manifest
    check_command(config, m.tree)  # before the build: a usage error should come at once
    with progress.step(f"building {branch.loaded.name}"):
        result = branch.build()
    print(f"base {m.base} {branch.base}")
    for outcome in result.outcomes:
        if outcome.blocked is not None:
            print(f"XSA-{outcome.xsa} not on the branch: {outcome.blocked.reason}")
    print(f"tip {result.tip} tree {result.tree_id}")
    checked = check_tip(config, branch, result, timeout=args.timeout, progress=progress)
    cached = " (cached)" if checked.cached else ""
    print(f"check {checked.status} in {checked.seconds:.1f}s{cached}; log: {checked.log}")
    if checked.passed:
        return 0
    missing_names = evidence(parse_errors(checked.output()), limit=10)
    if missing_names:
        print("missing:")
        print("\n".join(f"  {line}" for line in missing_names))
    print(checked.tail)
    return 1
