"""A branch as a patch series: `git format-patch` of its commits after the base, for those
who patch the release tarball instead of tracking git.

The patches are written so that GNU `patch -p1` and quilt apply them: `a/` and `b/` prefixes
whatever the user's git config says, no rename diffs (patch would not follow them), no
signature (its git version would make the same series differ between machines). Commits that
change nothing (a fix already in the base) give no patch.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.errors import GitError
from bot.git.runner import git, git_text

_SHA = re.compile(r"^[0-9a-f]{40}$")
_FROM = re.compile(rb"^From ([0-9a-f]{40}) ", re.MULTILINE)


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str


def commits_after(repo: Path, base: str, tip: str) -> list[Commit]:
    """The commits of `base..tip`, oldest first, with their messages; `tip` must be a
    straight line on `base` (a build is: one parent per commit)."""
    for sha in (base, tip):
        if not _SHA.match(sha):
            raise GitError(f"not a commit ID: {sha!r}")
    shas = git_text(["rev-list", "--reverse", "--topo-order", f"{base}..{tip}"], cwd=repo).split()
    merges = git_text(["rev-list", "--merges", f"{base}..{tip}"], cwd=repo).split()
    if merges:
        raise GitError(f"{tip[:12]} is not a straight line on {base[:12]}: merge {merges[0][:12]}")
    out = []
    for sha in shas:
        message = git(["cat-file", "commit", sha], cwd=repo).stdout.split(b"\n\n", 1)
        text = message[1] if len(message) > 1 else b""
        out.append(Commit(sha, text.decode("utf-8", "replace")))
    return out


def format_patches(repo: Path, base: str, tip: str) -> dict[str, tuple[str, bytes]]:
    """`git format-patch base..tip`, by commit: (git's file name without its number, text)."""
    for sha in (base, tip):
        if not _SHA.match(sha):
            raise GitError(f"not a commit ID: {sha!r}")
    with tempfile.TemporaryDirectory(prefix="xsabot-series-") as tmp:
        git(
            [
                "-c",
                "diff.noprefix=false",
                "-c",
                "diff.mnemonicPrefix=false",
                "format-patch",
                "--quiet",
                "--no-numbered",
                "--no-signature",
                "--no-renames",
                "--src-prefix=a/",
                "--dst-prefix=b/",
                "--output-directory",
                tmp,
                f"{base}..{tip}",
            ],
            cwd=repo,
            timeout=1800,
        )
        found: dict[str, tuple[str, bytes]] = {}
        for path in sorted(Path(tmp).iterdir()):
            data = path.read_bytes()
            match = _FROM.match(data)
            if match is None:
                raise GitError(f"git format-patch wrote {path.name} without its commit")
            slug = path.name.split("-", 1)[1] if "-" in path.name else path.name
            found[match[1].decode()] = (slug, data)
        return found
