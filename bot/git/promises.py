"""What a published branch holds, read back from the mirror: the bot's last tip of a branch,
and whether the changes a build record published for an XSA are in a new base.

The record names an XSA's source commits and patches; its build (`BuildRecord.build`) holds
the picks, each carrying `(cherry picked from commit X)` or the advisory patch's line. A
change is in the new base when its source commit is an ancestor of it, or when a commit the
new base adds over the old one has the patch-id (`git patch-id --stable`, which libgit2
computes) of the source commit or of the published pick. Only the commits of that range that
touch the change's paths are diffed, so a point release costs a handful of diffs.
"""

from __future__ import annotations

import re

import pygit2

from bot.core.record import BuildRecord, XsaRecord
from bot.git.publish import read_record
from bot.git.runner import git
from bot.git.workrepo import WorkRepo

WALK_LIMIT = 1000  # commits looked at behind a branch tip for the bot's last one
_SHA = re.compile(r"[0-9a-f]{40}")
_PICKED = re.compile(rb"^\(cherry picked from commit ([0-9a-f]{40})\)$", re.M)
_PATCHED = re.compile(rb"^\(applied from advisory patch .* sha256 ([0-9a-f]{64})\)$", re.M)


def last_recorded_tip(
    work: WorkRepo, tip: str, notes: str | None, branch: str, *, limit: int = WALK_LIMIT
) -> str | None:
    """The newest commit behind `tip` (itself included, `limit` commits at most) whose note
    holds a readable record of `branch`: the last tip the bot published there."""
    if notes is None:
        return None
    noted = {entry.name for entry in work.repo[notes].peel(pygit2.Tree)}
    walker = work.repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL)
    for seen, commit in enumerate(walker):
        if seen >= limit:
            break
        sha = str(commit.id)
        if sha in noted and isinstance(read_record(work, sha, notes, branch), BuildRecord):
            return sha
    return None


class BaseChanges:
    """`in_base(xsa)` for `bot.core.publish.removals`: whether every change `old` published
    for an XSA is in `new_base`."""

    def __init__(self, work: WorkRepo, old: BuildRecord, new_base: str) -> None:
        self.work = work
        self.repo = work.repo
        self.old = old
        self.new_base = new_base
        self._picks: dict[str, str] | None = None
        self._ids: dict[str, str | None] = {}
        self._range: dict[tuple[str, ...], set[str]] = {}

    def __call__(self, xsa: XsaRecord) -> bool:
        picks = self.picks()
        changes: list[tuple[str | None, str | None]] = [(c, picks.get(c)) for c in xsa.commits]
        changes += [(None, picks.get(f"patch:{h}")) for h in xsa.patches]
        return bool(changes) and all(self._in_base(s, p) for s, p in changes)

    def _in_base(self, source: str | None, pick: str | None) -> bool:
        if source is not None and self.work.is_ancestor(source, self.new_base):
            return True
        commits = [c for c in (source, pick) if c is not None]
        mine = {i for c in commits if (i := self._patch_id(c)) is not None}
        paths = {p for c in commits for p in self._paths(c)}
        return bool(mine & self._range_ids(tuple(sorted(paths))))

    def picks(self) -> dict[str, str]:
        """The old build's picks by what they came from: a source commit ID, or
        `patch:<sha256>`; read once, from the build back to its base."""
        if self._picks is None:
            self._picks = {}
            commit = self.old.build
            for _ in range(WALK_LIMIT):
                if commit == self.old.base_commit:
                    break
                try:
                    obj = self.repo[commit].peel(pygit2.Commit)
                except (KeyError, ValueError):
                    break
                message = obj.raw_message
                found = _PICKED.findall(message)
                found = found or [b"patch:" + h for h in _PATCHED.findall(message)]
                if found:
                    self._picks.setdefault(found[-1].decode(), commit)
                if len(obj.parent_ids) != 1:
                    break
                commit = str(obj.parent_ids[0])
        return self._picks

    def _commit(self, sha: str) -> pygit2.Commit | None:
        try:
            commit = self.repo[sha].peel(pygit2.Commit)
        except (KeyError, ValueError):
            return None
        return commit if len(commit.parent_ids) == 1 else None

    def _patch_id(self, sha: str) -> str | None:
        if sha not in self._ids:
            commit = self._commit(sha)
            self._ids[sha] = None
            if commit is not None:
                diff = self.repo.diff(commit.parents[0], commit)
                self._ids[sha] = str(diff.patchid)
        return self._ids[sha]

    def _paths(self, sha: str) -> list[str]:
        commit = self._commit(sha)
        if commit is None:
            return []
        diff = self.repo.diff(commit.parents[0], commit)
        return [p for d in diff.deltas for p in {d.old_file.path, d.new_file.path}]

    def _range_ids(self, paths: tuple[str, ...]) -> set[str]:
        """Patch-ids of the commits the new base adds over the old one that touch `paths`."""
        if not paths or not _SHA.fullmatch(self.old.base_commit):
            return set()
        found = self._range.get(paths)
        if found is None:
            # The record comes from a note anyone with push access could edit: only a commit
            # ID reaches git, and the paths are literal (no pathspec magic).
            args = ["--literal-pathspecs", "rev-list", "--no-merges", self.new_base]
            args += [f"^{self.old.base_commit}", "--", *paths]
            out = git(args, cwd=self.work.path).stdout.decode()
            found = self._range[paths] = {i for c in out.split() if (i := self._patch_id(c))}
        return found
