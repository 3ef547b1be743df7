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

from bot.cli import Context
from bot.config import Config
from bot.errors import UsageError
from bot.git.runner import git
from bot.importer import find_xsa_commits, render_manifest, resolve_source, security_support_until

log = logging.getLogger(__name__)

_TREE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_LINE = re.compile(r"(\d+\.\d+)$")
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
FETCH_TIMEOUT = 3600.0  # a first fetch of the whole Xen history takes minutes


def _upstream_value(text: str) -> tuple[str, str]:
    """`TREE=PATH_OR_URL`, or a bare path or URL meaning the `--tree` being imported ("")."""
    name, sep, value = text.partition("=")
    if sep and _TREE_NAME.fullmatch(name):
        if not value:
            raise argparse.ArgumentTypeError(f"expected TREE=PATH_OR_URL, got {text!r}")
        return name, value
    if not text:
        raise argparse.ArgumentTypeError("expected [TREE=]PATH_OR_URL, got ''")
    return "", text  # a path or URL may itself hold "=" (a query string): not a tree name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind", choices=("stable",), help="where fixes come from: `stable` (a stable branch)"
    )
    parser.add_argument("--source", required=True, help="upstream branch, e.g. stable-4.19")
    parser.add_argument("--base", required=True, help="upstream tag, e.g. RELEASE-4.19.4")
    parser.add_argument("--tree", default="xen", help="tree from the config (default: xen)")
    parser.add_argument(
        "--branch", help="published branch (default: <namespace><X.Y> from --source, xsa/4.19)"
    )
    # Only for this subcommand, `--upstream PATH` is short for `--upstream <--tree>=PATH`: the
    # common option's own action gets a wider type, so other subcommands are unaffected.
    for action in parser._actions:
        if "--upstream" in action.option_strings:
            action.type = _upstream_value
            action.metavar = "[TREE=]PATH_OR_URL"


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
    cache = config.state / "repos" / f"{tree}.git"
    if not cache.is_dir():
        cache.parent.mkdir(parents=True, exist_ok=True)
        git(["init", "--quiet", "--bare", cache])
    log.info("fetching %s upstream into %s", tree, cache)
    # The cache mirrors upstream branches and tags under their own names, so --source and
    # --base mean the same as in a clone; --prune drops branches upstream deleted.
    git(
        [
            "fetch",
            "--quiet",
            "--prune",
            "--no-tags",
            "--end-of-options",
            location,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        ],
        cwd=cache,
        timeout=FETCH_TIMEOUT,
    )
    return cache


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
