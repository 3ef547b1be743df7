"""`xsabot check MANIFEST`: build one branch and run its tree's check command on the tip.

The command comes from the config (`trees.<tree>.check`, `check_timeout`) or `--check
TREE=COMMAND`. Results are cached by tree: checking an unchanged branch again prints the
recorded result at once. Exit 0 when the check passes, 1 when it fails or times out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.app.branch import prepare
from bot.cli.main import Context
from bot.cli.progress import Progress
from bot.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # `--check TREE=COMMAND` is one of the common options (bot/cli/main.py).
    parser.add_argument("manifest", type=Path, help="the manifest file")
    parser.add_argument(
        "--timeout", type=float, help="seconds the check may take (default: the config's)"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.check.runner import CheckRunner
    from bot.core.compiler import evidence, parse_errors

    config = ctx.config
    progress = Progress()
    branch = prepare(config, args.manifest, progress)
    m = branch.loaded.manifest
    tree_config = config.trees[m.tree]
    if not tree_config.check:
        raise UsageError(
            f"no check command for tree {m.tree!r}: set trees.{m.tree}.check in the config "
            f"or give --check {m.tree}=COMMAND"
        )
    timeout = args.timeout or tree_config.check_timeout
    with progress.step(f"building {branch.loaded.name}"):
        result = branch.build()
    branch.store.flush([result.tip])  # the check exports the tree with git
    base, work = branch.base, branch.work

    print(f"base {m.base} {base}")
    for outcome in result.outcomes:
        if outcome.blocked is not None:
            print(f"XSA-{outcome.xsa} not on the branch: {outcome.blocked.reason}")
    print(f"tip {result.tip} tree {result.tree_id}")
    runner = CheckRunner(
        tree_config.check, repo_path=work.path, state=config.state, timeout=timeout
    )
    with progress.step(f"checking {branch.loaded.name}"):
        checked = runner.check(result.tree_id)
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
