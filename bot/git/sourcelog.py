"""Facts about the commits on a source branch that the prerequisite finder reads many times.

Parents, subject, XSA statement and the paths each commit changes, read with one `git log`
per range: git lists changed paths about ten times faster than pygit2 diffs do (0.03 s against
0.32 s for the 579 commits after RELEASE-4.17.0). Commit IDs name their content, so the facts
are kept for the life of the process and never go stale.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import pygit2

from bot.core.xsa_messages import subject_of, xsa_numbers
from bot.errors import UsageError
from bot.git.runner import git


@dataclass(frozen=True)
class SourceCommit:
    sha: str
    parents: tuple[str, ...]
    subject: str
    xsas: tuple[int, ...]  # the XSAs its message says it fixes; () for any other commit
    paths: frozenset[str]  # paths it changes (both sides of a rename)

    @property
    def parent(self) -> str | None:
        return self.parents[0] if len(self.parents) == 1 else None


class SourceLog:
    """One repository's commit facts and the linear ranges already listed."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.commits: dict[str, SourceCommit] = {}
        # Per base: the longest linear chain listed so far and each commit's place in it, so a
        # range ending anywhere on it costs a slice, not a `git log`.
        self._chains: dict[str, list[str]] = {}
        self._places: dict[str, dict[str, int]] = {}

    def range(self, base: str, tip: str) -> list[SourceCommit]:
        """Commits reachable from `tip` and not from `base`, oldest first."""
        place = self._places.get(base, {}).get(tip)
        if place is not None:
            return [self.commits[s] for s in self._chains[base][: place + 1]]
        if tip == base:
            return []
        chain = self._chains.get(base)
        if chain:
            # The next fix usually sits further along the same line: list only the new part.
            more = self._log(chain[-1], tip)
            if more and more[0].parents == (chain[-1],) and _linear(more):
                places = self._places[base]
                for c in more:
                    places[c.sha] = len(chain)
                    chain.append(c.sha)
                return [self.commits[s] for s in chain]
        listed = self._log(base, tip)
        if _linear(listed) and len(listed) > len(chain or ()):
            self._chains[base] = [c.sha for c in listed]
            self._places[base] = {c.sha: i for i, c in enumerate(listed)}
        return listed

    def get(self, sha: str) -> SourceCommit:
        found = self.commits.get(sha)
        if found is None:
            listed = self._log(None, sha)
            found = listed[0]
        return found

    def _log(self, base: str | None, tip: str) -> list[SourceCommit]:
        spec = [f"{base}..{tip}"] if base else ["-1", tip]
        proc = git(
            [
                "log",
                "--topo-order",
                "--reverse",
                "--no-renames",
                "--name-only",
                "-z",
                "--format=%x01%H %P%x02%B%x02",
                *spec,
                "--",
            ],
            cwd=Path(self.repo.path),
            check=False,
        )
        if proc.returncode != 0:
            raise UsageError(f"cannot list {' '.join(spec)}: not commits of this repository")
        out: list[SourceCommit] = []
        for record in proc.stdout.split(b"\x01")[1:]:
            ids, _, rest = record.partition(b"\x02")
            message, _, names = rest.partition(b"\x02")
            sha, *parents = ids.decode().split()
            known = self.commits.get(sha)
            if known is None:
                text = message.decode("utf-8", "replace")
                paths = frozenset(p.decode("utf-8", "surrogateescape") for p in _names(names))
                known = SourceCommit(
                    sha, tuple(parents), subject_of(text), xsa_numbers(text), paths
                )
                self.commits[sha] = known
            out.append(known)
        return out


def _names(raw: bytes) -> list[bytes]:
    return [n.strip(b"\n") for n in raw.split(b"\0") if n.strip(b"\n")]


def _linear(commits: list[SourceCommit]) -> bool:
    return all(c.parents == (p.sha,) for p, c in itertools.pairwise(commits))


class _PerRepository(Protocol):
    repo: pygit2.Repository


Shared = TypeVar("Shared", bound=_PerRepository)


def shared(
    cache: dict[str, Shared], repo: pygit2.Repository, make: Callable[[pygit2.Repository], Shared]
) -> Shared:
    """The one `make(repo)` of this process for the repository at `repo.path`, pointed at
    `repo` (what it learnt about the history stays valid across Repository objects)."""
    key = str(Path(repo.path).resolve())
    found = cache.get(key)
    if found is None:
        found = cache[key] = make(repo)
    found.repo = repo
    return found


_LOGS: dict[str, SourceLog] = {}


def source_log(repo: pygit2.Repository) -> SourceLog:
    """The shared log of a repository."""
    return shared(_LOGS, repo, SourceLog)
