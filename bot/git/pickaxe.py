"""Which source commits add a name or a file: git's pickaxe over a range, read for the check's
prerequisite search (`bot.check.prereqs`).

A pickaxe hit only says the number of occurrences changed; a commit that removes or moves a
name is not its introducer, so each hit's `-U0` patch is read and only commits that add more
occurrences than they remove are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from bot.git import Repository
from bot.git.runner import git


def commits_adding_identifier(
    repo: Repository, name: str, base: str, tip: str, paths: Sequence[str] | None = None
) -> list[str]:
    """Commits in (base, tip] that add occurrences of the identifier `name` (in `paths`, or
    anywhere), newest first as `git log` lists them."""
    word = f"(^|[^A-Za-z0-9_]){name}([^A-Za-z0-9_]|$)"
    proc = git(
        [
            "log",
            "--format=%x01%H",
            "-p",
            "-U0",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            "--pickaxe-regex",
            f"-S{word}",
            f"{base}..{tip}",
            "--",
            *(paths or []),
        ],
        cwd=Path(repo.path),
    )
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
    out = []
    for record in proc.stdout.decode("utf-8", "replace").split("\x01")[1:]:
        sha, _, diff = record.partition("\n")
        added, removed = _occurrences(diff, pattern)
        if added > removed:
            out.append(sha.strip())
    return out


def commits_adding_file(repo: Repository, header: str, base: str, tip: str) -> list[str]:
    """Commits in (base, tip] that add a file the `#include` name `header` resolves to."""
    proc = git(
        [
            "log",
            "--format=%H",
            "--diff-filter=A",
            "--no-renames",
            f"{base}..{tip}",
            "--",
            header,
            f"*/{header}",
        ],
        cwd=Path(repo.path),
    )
    return proc.stdout.decode().split()


def _occurrences(diff: str, pattern: re.Pattern[str]) -> tuple[int, int]:
    """(added, removed) occurrences of `pattern` in a `-U0` patch's changed lines."""
    added = removed = 0
    in_hunk = False
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            in_hunk = False
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line[:1] == "+":
            added += len(pattern.findall(line, 1))
        elif in_hunk and line[:1] == "-":
            removed += len(pattern.findall(line, 1))
    return added, removed
