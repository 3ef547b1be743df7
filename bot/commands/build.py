"""`xsabot build MANIFEST`: build one branch from its manifest and print its commits.

The last line printed is the tip: the same manifest and upstream give the same tip on any
machine, so a downstream can check a published branch (its tip is this commit, or a
pseudo-merge whose second parent is this commit) without trusting the bot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli import Context
from bot.errors import UsageError
from bot.git.objects import ObjectStore
from bot.git.runner import git
from bot.git.workrepo import WorkRepo, is_local
from bot.manifest.load import load_manifest
from bot.progress import Progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="the manifest file")
    parser.add_argument(
        "--ref",
        help="also point this ref at the tip in the local upstream repository "
        "(e.g. refs/heads/xsa-check), to look at the commits there",
    )


def manifests_root(ctx: Context, path: Path) -> Path:
    """Patch paths are relative to the manifests dir the file sits in."""
    configured = ctx.config.manifests
    return configured if path.resolve().parent == configured.resolve() else path.resolve().parent


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.git.build import Builder
    from bot.manifest.refname import check_ref_format

    config = ctx.config
    if not args.manifest.is_file():
        raise UsageError(f"{args.manifest}: no such manifest")
    root = manifests_root(ctx, args.manifest)
    loaded = load_manifest(
        args.manifest, root=root, namespace=config.namespace, trees=config.trees.keys()
    )
    m = loaded.manifest
    upstream = config.upstream_of(m.tree)
    work: WorkRepo = WorkRepo.for_tree(config.state, m.tree)
    with Progress().step(f"fetching {m.tree} upstream"):
        work.fetch_upstream(upstream)
    base = work.upstream(m.base, "tags")
    source = work.upstream(m.source, "heads")
    if base is None or source is None:
        missing = m.base if base is None else m.source
        raise UsageError(f"{args.manifest}: {missing!r} not found in {upstream}")
    store = ObjectStore(work.repo)
    builder = Builder(work.repo, store, config.identity, patch_cache=config.state / "patches")
    with Progress().step(f"building {loaded.name}"):
        result = builder.build(m, manifests_root=root, base_commit=base, source_commit=source)
    status = 0
    print(f"base {m.base} {base}")
    for outcome in result.outcomes:
        for pick in outcome.picks:
            if outcome.state != "blocked":
                mark = "already there" if pick.empty else pick.commit
                print(f"XSA-{outcome.xsa} {pick.role} {pick.source} -> {mark}")
        if outcome.blocked is not None:
            b = outcome.blocked
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
        # The upstream clone may not have the bot's objects: push them there.
        git(["push", "--quiet", "--force", upstream, f"{result.tip}:{args.ref}"], cwd=work.path)
    print(result.tip)
    return status
