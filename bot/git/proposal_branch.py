"""Proposal branches in a repository of manifests: commit files with plumbing, move a branch
only from the tip the caller expects, and what a forge asks about such a repository.

No work tree and no index of the repository's own are touched: a commit is made from a
temporary index, so a volunteer's checkout (the local forge's manifests repository) or a bare
cache (the GitLab and GitHub forges') stays as it is. A branch is only ever moved with its
expected old value, so a human's push to the bot's branch is never overwritten silently.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.git.runner import git, git_text

_HEADS = "refs/heads/"


@dataclass(frozen=True)
class CommitInfo:
    """What the forges ask about a commit on a proposal branch: is it the bot's proposal?"""

    parents: tuple[str, ...]
    committer_email: str
    committer_date: str  # git's raw form: seconds and offset, e.g. `1700000000 +0000`
    message: str


def _identity_env(name: str, email: str, date: str | None) -> dict[str, str]:
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return env


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

    `files` maps paths relative to the repository root to their full text. No ref moves.
    """
    with tempfile.TemporaryDirectory(prefix="xsabot-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(["read-tree", base], cwd=repo, env=env)
        for path, text in sorted(files.items()):
            blob = git_text(["hash-object", "-w", "--stdin"], cwd=repo, input=text.encode())
            git(
                ["update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], cwd=repo, env=env
            )
        tree = git_text(["write-tree"], cwd=repo, env=env)
    return git_text(
        ["commit-tree", tree, "-p", base, "-F", "-"],
        cwd=repo,
        input=message.encode(),
        env=_identity_env(name, email, date),
    )


def same_tree(repo: Path, a: str, b: str) -> bool:
    return git_text(["rev-parse", f"{a}^{{tree}}"], cwd=repo) == git_text(
        ["rev-parse", f"{b}^{{tree}}"], cwd=repo
    )


def move_branch(repo: Path, branch: str, new: str, old: str | None) -> None:
    """Point refs/heads/`branch` at `new` if it is still at `old` (None: must not exist).

    GitError if the branch is not where the caller expects it.
    """
    expected = old if old is not None else "0" * 40
    git(["update-ref", f"{_HEADS}{branch}", new, expected], cwd=repo)


def branch_tip(repo: Path, branch: str) -> str | None:
    proc = git(["rev-parse", "--verify", "-q", f"{_HEADS}{branch}"], cwd=repo, check=False)
    return proc.stdout.decode().strip() or None


def top_level(path: Path) -> Path | None:
    """The top of the work tree `path` is in; None if it is in no git repository."""
    proc = git(["rev-parse", "--show-toplevel"], cwd=path, check=False)
    top = proc.stdout.decode().strip()
    return Path(top) if proc.returncode == 0 and top else None


def checked_out_branch(repo: Path) -> str | None:
    """The branch HEAD is on; None when HEAD is detached."""
    proc = git(["symbolic-ref", "--quiet", "HEAD"], cwd=repo, check=False)
    ref = proc.stdout.decode().strip()
    return ref.removeprefix(_HEADS) if ref.startswith(_HEADS) else None


def is_ancestor(repo: Path, commit: str, of: str) -> bool:
    """Whether `commit` is `of` or in its history (a proposal merged into the default branch)."""
    return git(["merge-base", "--is-ancestor", commit, of], cwd=repo, check=False).returncode == 0


def commit_info(repo: Path, sha: str) -> CommitInfo:
    """The parents, committer and message of commit `sha` (GitError if there is none)."""
    raw = git(["cat-file", "commit", sha], cwd=repo).stdout.decode("utf-8", "replace")
    header, _, message = raw.partition("\n\n")
    parents: list[str] = []
    email = date = ""
    for line in header.splitlines():
        key, _, value = line.partition(" ")
        if key == "parent":
            parents.append(value)
        elif key == "committer":
            who, _, when = value.rpartition("> ")
            email = who.partition("<")[2]
            date = when
    return CommitInfo(tuple(parents), email, date, message)


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
