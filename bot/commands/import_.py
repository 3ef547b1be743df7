"""`xsabot import stable`: print a manifest listing the XSA fix commits on a stable branch.

A volunteer starts a manifest from this output instead of typing SHAs, then adds
prerequisites through review. The upstream is read in place when it is a local repository,
or fetched into a cache under the state dir when it is a URL.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from bot.app.importer import (
    find_xsa_commits,
    render_manifest,
    resolve_source,
    security_support_until,
)
from bot.cli.main import Context
from bot.config import Config
from bot.errors import UsageError
from bot.git.workrepo import WorkRepo

log = logging.getLogger(__name__)

_LINE = re.compile(r"(\d+\.\d+)$")
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
FETCH_TIMEOUT = 3600.0  # a first fetch of the whole Xen history takes minutes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind", choices=("stable",), help="where fixes come from: `stable` (a stable branch)"
    )
    parser.add_argument(
        "--source", required=True, help="upstream branch, e.g. stable-4.19 (required)"
    )
    parser.add_argument(
        "--base", required=True, help="upstream tag, e.g. RELEASE-4.19.4 (required)"
    )
    parser.add_argument("--tree", default="xen", help="tree from the config (default: xen)")
    parser.add_argument(
        "--branch", help="published branch (default: <namespace><X.Y> from --source, xsa/4.19)"
    )


def default_branch(config: Config, source: str) -> str:
    match = _LINE.search(source)
    if match is None:
        raise UsageError(f"cannot derive a branch name from --source {source!r}: give --branch")
    return f"{config.namespace}{match[1]}"


def upstream_repository(config: Config, tree: str) -> Path:
    """A local repository holding the tree's upstream refs: in place, or a fetched cache."""
    if tree not in config.trees:
        raise UsageError(f"unknown tree {tree!r}: give --upstream {tree}=PATH_OR_URL")
    location = config.upstream_of(tree)
    if not _URL.match(location):
        path = Path(location).expanduser()
        if not path.is_dir():
            raise UsageError(f"upstream of {tree!r}: no repository at {location}")
        return path
    # A URL is fetched into the bot's work repository for the tree (refs/upstream/...).
    work = WorkRepo.for_tree(config.state, tree)
    log.info("fetching %s upstream into %s", tree, work.path)
    work.fetch_upstream(location, timeout=FETCH_TIMEOUT)
    return work.path


def run(args: argparse.Namespace, ctx: Context) -> int:
    # Resolve the short form before the config reads --upstream.
    args.upstream = [(name or args.tree, value) for name, value in args.upstream]
    config = ctx.config
    branch = args.branch or default_branch(config, args.source)
    if not branch.startswith(config.namespace):
        raise UsageError(f"--branch {branch!r} is outside the bot's namespace {config.namespace!r}")
    repo = upstream_repository(config, args.tree)
    groups = find_xsa_commits(repo, args.base, args.source)
    log.info("%d XSAs, %d commits", len(groups), sum(len(c) for _, c in groups))
    text = render_manifest(
        tree=args.tree,
        base=args.base,
        source=args.source,
        branch=branch,
        groups=groups,
        source_tip=resolve_source(repo, args.source),
        supported_until=security_support_until(repo, args.source),
    )
    sys.stdout.write(text)
    return 0
