"""`xsabot check MANIFEST`: build one branch and run its tree's check command on the tip.

The command comes from the config (`trees.<tree>.check`, `check_timeout`) or `--check
TREE=COMMAND`. Results are cached by tree: checking an unchanged branch again prints the
recorded result at once. Exit 0 when the check passes, 1 when it fails or times out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli import Context
from bot.commands.build import manifests_root
from bot.errors import UsageError
from bot.git.objects import ObjectStore
from bot.git.workrepo import WorkRepo
from bot.manifest.load import load_manifest
from bot.progress import Progress

DEFAULT_TIMEOUT = 1800.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # `--check TREE=COMMAND` is one of the common options (bot/cli.py).
    parser.add_argument("manifest", type=Path, help="the manifest file")
    parser.add_argument(
        "--timeout", type=float, help="seconds the check may take (default: the config's)"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.check.runner import CheckRunner
    from bot.core.compiler import evidence, parse_errors
    from bot.git.build import Builder

    config = ctx.config
    if not args.manifest.is_file():
        raise UsageError(f"{args.manifest}: no such manifest")
    root = manifests_root(ctx, args.manifest)
    loaded = load_manifest(
        args.manifest, root=root, namespace=config.namespace, trees=config.trees.keys()
    )
    m = loaded.manifest
    tree_config = config.trees[m.tree]
    command = getattr(tree_config, "check", None)
    if not command:
        raise UsageError(
            f"no check command for tree {m.tree!r}: set trees.{m.tree}.check in the config "
            f"or give --check {m.tree}=COMMAND"
        )
    timeout = args.timeout or getattr(tree_config, "check_timeout", DEFAULT_TIMEOUT)

    upstream = config.upstream_of(m.tree)
    work = WorkRepo.for_tree(config.state, m.tree)
    progress = Progress()
    with progress.step(f"fetching {m.tree} upstream"):
        work.fetch_upstream(upstream)
    base = work.upstream(m.base, "tags")
    source = work.upstream(m.source, "heads")
    if base is None or source is None:
        missing = m.base if base is None else m.source
        raise UsageError(f"{args.manifest}: {missing!r} not found in {upstream}")
    store = ObjectStore(work.repo)
    builder = Builder(work.repo, store, config.identity, patch_cache=config.state / "patches")
    with progress.step(f"building {loaded.name}"):
        result = builder.build(m, manifests_root=root, base_commit=base, source_commit=source)
    store.flush([result.tip])  # the check exports the tree with git

    print(f"base {m.base} {base}")
    for outcome in result.outcomes:
        if outcome.blocked is not None:
            print(f"XSA-{outcome.xsa} not on the branch: {outcome.blocked.reason}")
    print(f"tip {result.tip} tree {result.tree}")
    runner = CheckRunner(command, repo_path=work.path, state=config.state, timeout=timeout)
    with progress.step(f"checking {loaded.name}"):
        checked = runner.check(result.tree)
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
