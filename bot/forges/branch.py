"""Commit a proposal's file edits onto a branch, with git plumbing and no work tree.

Shared by every forge: the local forge commits into the manifests repository itself; the
GitLab and GitHub forges commit into a cached clone and push. A branch is only ever moved
with its expected old value, so a human's push to the bot's branch is never overwritten
silently. `check_proposal` is every forge's rule for which branches and files a proposal may
write, checked before any commit or request is made: one function, so the forges cannot
drift apart on it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from bot.core.ports import BOT_BRANCH_PREFIX, Proposal
from bot.errors import ForgeError
from bot.git.runner import git, git_text


def check_proposal(proposal: Proposal) -> None:
    """The bot writes only branches under its prefix, and only files inside the repository."""
    if not proposal.branch.startswith(BOT_BRANCH_PREFIX):
        raise ForgeError(f"{proposal.branch}: proposals live under {BOT_BRANCH_PREFIX}")
    for path in proposal.files:
        parts = PurePosixPath(path).parts
        if not parts or PurePosixPath(path).is_absolute() or ".." in parts or ".git" in parts:
            raise ForgeError(f"{path}: not a path inside the manifests repository")


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
    """Point refs/heads/`branch` at `new` if it is still at `old` (None: must not exist)."""
    expected = old if old is not None else "0" * 40
    git(["update-ref", f"refs/heads/{branch}", new, expected], cwd=repo)


def branch_tip(repo: Path, branch: str) -> str | None:
    proc = git(["rev-parse", "--verify", "-q", f"refs/heads/{branch}"], cwd=repo, check=False)
    return proc.stdout.decode().strip() or None
