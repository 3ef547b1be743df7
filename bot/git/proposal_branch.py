"""Proposal branches in a repository of manifests: commit files, move a branch only from the
tip the caller expects, and what a forge asks about such a repository.

No work tree and no index of the repository's own are touched: a commit is made from an
index in memory (libgit2, in process: a pass may make hundreds), so a volunteer's checkout
(the local forge's manifests repository) or a bare cache (the GitLab and GitHub forges')
stays as it is. A branch is only ever moved with its expected old value (`git update-ref`),
so a human's push to the bot's branch is never overwritten silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pygit2

from bot.errors import GitError
from bot.git.locks import lock_in_the_way, remove_if_stale
from bot.git.runner import git, git_text

_HEADS = "refs/heads/"


@dataclass(frozen=True)
class CommitInfo:
    """What the forges ask about a commit on a proposal branch: is it the bot's proposal?"""

    parents: tuple[str, ...]
    committer_email: str
    committer_date: str  # git's raw form: seconds and offset, e.g. `1700000000 +0000`
    message: str


def commit_files(
    repo: Path,
    *,
    base: str,
    files: Mapping[str, str],
    message: str,
    name: str,
    email: str,
    date: str | None = None,
) -> str:
    """Return a new commit whose parent is `base` and whose tree is base's plus `files`.

    `files` maps paths relative to the repository root to their full text; `date` is git's
    raw form (`1700000000 +0000`), the current time when None. No ref moves. The commit is
    the one `git commit-tree` makes of the same tree, parent, identity, date and message.
    """
    r = _open(repo)
    parent = _commit(r, base)
    index = pygit2.Index()
    index.read_tree(parent.tree)
    for path, text in sorted(files.items()):
        blob = r.create_blob(text.encode())
        index.add(pygit2.IndexEntry(path, blob, pygit2.enums.FileMode.BLOB))
    tree = index.write_tree(r)
    if date is None:
        signature = pygit2.Signature(name, email)
    else:
        seconds, _, zone = date.partition(" ")
        minutes = int(zone[1:3]) * 60 + int(zone[3:5]) if len(zone) == 5 else 0
        offset = -minutes if zone.startswith("-") else minutes
        signature = pygit2.Signature(name, email, int(seconds), offset)
    return str(r.create_commit(None, signature, signature, message, tree, [parent.id]))


def same_tree(repo: Path, a: str, b: str) -> bool:
    r = _open(repo)
    return _commit(r, a).tree_id == _commit(r, b).tree_id


def move_branch(repo: Path, branch: str, new: str, old: str | None) -> None:
    """Point refs/heads/`branch` at `new` if it is still at `old` (None: must not exist).

    GitError if the branch is not where the caller expects it.
    """
    expected = old if old is not None else "0" * 40
    _update_ref(repo, branch, [f"{_HEADS}{branch}", new, expected])


def delete_branch(repo: Path, branch: str, old: str) -> None:
    """Delete refs/heads/`branch` if it is still at `old`; GitError if it is not."""
    _update_ref(repo, branch, ["-d", f"{_HEADS}{branch}", old])


def _update_ref(repo: Path, branch: str, args: list[str]) -> None:
    """`git update-ref ARGS`, again once if the branch's own lock file was in the way and
    stale (left by a git killed while it moved the branch: `bot.git.locks`)."""
    try:
        git(["update-ref", *args], cwd=repo)
    except GitError as exc:
        lock = lock_in_the_way(str(exc))
        own = f"/{_HEADS}{branch}.lock"
        if lock is None or not lock.as_posix().endswith(own) or not remove_if_stale(lock):
            raise
        git(["update-ref", *args], cwd=repo)


def branch_tip(repo: Path, branch: str) -> str | None:
    ref = _open(repo).references.get(f"{_HEADS}{branch}")
    if ref is None:
        return None
    return str(ref.resolve().target)


def top_level(path: Path) -> Path | None:
    """The top of the work tree `path` is in; None if it is in no git repository."""
    proc = git(["rev-parse", "--show-toplevel"], cwd=path, check=False)
    top = proc.stdout.decode().strip()
    return Path(top) if proc.returncode == 0 and top else None


def checked_out_branch(repo: Path) -> str | None:
    """The branch HEAD is on (born or not); None when HEAD is detached."""
    head = _open(repo).references.get("HEAD")
    target = head.target if head is not None else None
    return (
        target.removeprefix(_HEADS)
        if isinstance(target, str) and target.startswith(_HEADS)
        else None
    )


def is_ancestor(repo: Path, commit: str, of: str) -> bool:
    """Whether `commit` is `of` or in its history (a proposal merged into the default branch)."""
    r = _open(repo)
    try:
        a, b = _commit(r, commit).id, _commit(r, of).id
    except GitError:
        return False
    return a == b or r.descendant_of(b, a)


def commit_info(repo: Path, sha: str) -> CommitInfo:
    """The parents, committer and message of commit `sha` (GitError if there is none)."""
    c = _commit(_open(repo), sha)
    who = c.committer
    minutes = abs(who.offset)
    zone = f"{'-' if who.offset < 0 else '+'}{minutes // 60:02d}{minutes % 60:02d}"
    return CommitInfo(
        tuple(str(p) for p in c.parent_ids), who.email, f"{who.time} {zone}", c.message
    )


def commit_date(repo: Path, sha: str) -> str:
    """The committer date of `sha`, as a proposal commit on it takes it (deterministic)."""
    return commit_info(repo, sha).committer_date


def branch_tips(repo: Path, prefix: str, *, merged_into: str | None = None) -> dict[str, str]:
    """{branch: tip} of the branches under `prefix` (e.g. `xsabot/`), in one git call; with
    `merged_into`, only those whose tip is in that branch's history."""
    args = ["for-each-ref", "--format=%(objectname) %(refname)"]
    if merged_into is not None:
        args.append(f"--merged={_HEADS}{merged_into}")
    lines = git_text([*args, f"{_HEADS}{prefix}"], cwd=repo).splitlines()
    tips = {}
    for line in lines:
        sha, _, ref = line.partition(" ")
        tips[ref.removeprefix(_HEADS)] = sha
    return tips


def _open(repo: Path) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(repo))
    except pygit2.GitError as exc:
        raise GitError(f"{repo}: not a git repository ({exc})") from None


def _commit(r: pygit2.Repository, rev: str) -> pygit2.Commit:
    try:
        obj = r.revparse_single(rev).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise GitError(f"{r.path}: no commit {rev} ({exc})") from None
    assert isinstance(obj, pygit2.Commit)
    return obj
