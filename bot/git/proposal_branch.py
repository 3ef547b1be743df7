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
from pathlib import Path

from bot.git.runner import git, git_text

_HEADS = "refs/heads/"


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
