"""An upstream repository read in place (a Xen clone, or the bot's work repository): its base
tags and source branches, the messages on a source branch, a file at a commit.

What the messages mean is `bot.core.xsa_messages`; this module only asks git.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bot.errors import SetupError, UsageError
from bot.git.runner import git


def _rev(repo: Path | str, name: str) -> str | None:
    proc = git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"],
        cwd=repo,
        check=False,
    )
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def check_repository(repo: Path | str) -> None:
    """SetupError unless `repo` is a git repository."""
    if not Path(repo).is_dir():
        raise SetupError(f"{repo}: no such directory")
    if git(["rev-parse", "--git-dir"], cwd=repo, check=False).returncode != 0:
        raise SetupError(f"{repo}: not a git repository")


def resolve_base(repo: Path | str, base: str) -> str:
    """The commit of the base tag (or any commit name); UsageError if the repo lacks it."""
    sha = (
        _rev(repo, f"refs/tags/{base}")
        or _rev(repo, f"refs/upstream/tags/{base}")  # the bot's work repository
        or _rev(repo, base)
    )
    if sha is None:
        raise UsageError(f"unknown base {base!r}: no such tag or commit in {repo}")
    return sha


def resolve_source(repo: Path | str, source: str) -> str:
    """The tip of the source branch, local or as `origin/<source>` in a plain clone."""
    for name in (
        f"refs/heads/{source}",
        f"refs/remotes/origin/{source}",
        f"refs/upstream/heads/{source}",  # the bot's work repository
    ):
        sha = _rev(repo, name)
        if sha is not None:
            return sha
    raise UsageError(f"unknown source {source!r}: no such branch in {repo}")


def first_parent_messages(
    repo: Path | str, base_sha: str, source_sha: str
) -> Iterator[tuple[str, str]]:
    """(commit, message) of base..source on the branch's own line, oldest first."""
    # One git process for the whole range; records are NUL-separated because a message may
    # hold any other byte.
    out = git(
        [
            "log",
            "--first-parent",
            "--reverse",
            "-z",
            "--format=%H%n%B",
            f"{base_sha}..{source_sha}",
            "--",
        ],
        cwd=repo,
    ).stdout.decode("utf-8", "replace")
    for record in out.split("\0"):
        if record:
            sha, _, message = record.partition("\n")
            yield sha, message


def file_at(repo: Path | str, commit: str, path: str) -> str:
    """The text of `path` at `commit`; GitError if it has no such file."""
    return git(["show", f"{commit}:{path}"], cwd=repo).stdout.decode("utf-8", "replace")
