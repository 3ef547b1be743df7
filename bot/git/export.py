"""A tree as plain files for the check: which tree a commit has, and its files in a directory.

Archiving a tree (not a commit) leaves `export-subst` files as they are in the tree, so the
export depends on the tree ID only. The "tar" filter refuses absolute and `..` member names;
symlinks are kept as they are (the operator's build runs in there anyway).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from bot.git.runner import git


def export_tree(repo: Path, tree: str, dest: Path) -> None:
    """Write `tree`'s files into `dest`, which must not exist yet (no `.git` in it)."""
    data = git(["archive", "--format=tar", tree], cwd=repo).stdout
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest, filter="tar")


def tree_of(repo: Path, commit: str) -> str | None:
    """The tree of `commit` in `repo`; None if the repository does not have the commit."""
    proc = git(["rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}"], cwd=repo, check=False)
    return proc.stdout.decode().strip() or None
