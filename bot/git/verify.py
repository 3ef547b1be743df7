"""What `xsabot verify` asks of git: a mirror given as a remote name, the paths two trees
differ in, and a branch's commits after its base."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.git.commits import parse_commit
from bot.git.objects import ObjectStore
from bot.git.runner import git, git_text
from bot.git.workrepo import WorkRepo

CHAIN_LIMIT = 10_000  # commits walked from a tip towards its base
_REMOTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def remote_url(name: str, cwd: Path | None = None) -> str | None:
    """The URL of remote `name` of the git repository at `cwd` (a downstream's clone), or
    None when `name` is not a remote name there."""
    if not _REMOTE.fullmatch(name):
        return None
    proc = git(["remote", "get-url", name], cwd=cwd or Path.cwd(), check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", "replace").strip() or None


def changed_paths(work: WorkRepo, old_tree: str, new_tree: str) -> list[str]:
    """The paths whose content or mode differs between two trees (objects in the repo)."""
    out = git_text(
        ["diff-tree", "-r", "--name-only", "--no-renames", old_tree, new_tree], cwd=work.path
    )
    return [line for line in out.splitlines() if line]


@dataclass(frozen=True)
class Commit:
    sha: str
    tree: str
    parents: tuple[str, ...]
    subject: str
    committer: bytes


def commit(store: ObjectStore, sha: str) -> Commit:
    raw = parse_commit(store.read(sha)[1])
    return Commit(sha, raw.tree, raw.parents, raw.subject, raw.committer)


def after_base(store: ObjectStore, tip: str, base: str) -> list[Commit] | None:
    """The first-parent commits from `base` (excluded) to `tip`, oldest first; None when the
    walk does not reach `base` (the tip is not built on it)."""
    chain: list[Commit] = []
    sha = tip
    while sha != base:
        if len(chain) >= CHAIN_LIMIT:
            return None
        found = commit(store, sha)
        chain.append(found)
        if not found.parents:
            return None
        sha = found.parents[0]
    return chain[::-1]


def identity_of(committer: bytes) -> tuple[str, str] | None:
    """Name and email of a commit's committer line (`Name <email> date zone`)."""
    match = re.fullmatch(rb"(.*?) <([^<>]*)> \d+ [+-]\d{4}", committer)
    if match is None:
        return None
    return match[1].decode("utf-8", "replace"), match[2].decode("utf-8", "replace")
