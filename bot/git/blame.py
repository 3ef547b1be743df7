"""Which commits of a range wrote the lines a change removes or keeps as context.

A blame restricted to the lines that matter and to the commits of the range that touch the
file: walking those back from the newest, each diff (zero context) says which of the pending
lines it added and where the others were before it. It reads only the few commits that touch
the path, where `git blame` walks the whole history of the file.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pygit2

from bot.git.sourcelog import SourceCommit

CONTEXT = 3  # lines of context, as `git diff` and `git patch-id` use


Hunks = list[tuple[int, int, int, int]]  # (old_start, old_lines, new_start, new_lines)


class SourceFiles:
    """Files at source commits and what each commit did to them, cached per (commit, path):
    the same fixes come back for every point release of a line, over mostly the same commits.
    """

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self._blobs: dict[tuple[str, str], str | None] = {}
        self._hunks: dict[tuple[str, str], Hunks | None] = {}
        self._relied: dict[tuple[str, str], list[int]] = {}
        self._patch_ids: dict[str, str] = {}

    def blob_id(self, commit: str, path: str) -> str | None:
        key = (commit, path)
        if key not in self._blobs:
            try:
                obj = self.repo[commit].peel(pygit2.Tree)[path]
            except KeyError:
                self._blobs[key] = None
            else:
                self._blobs[key] = str(obj.id) if isinstance(obj, pygit2.Blob) else None
        return self._blobs[key]

    def read(self, commit: str, path: str) -> bytes | None:
        oid = self.blob_id(commit, path)
        return None if oid is None else bytes(self.repo.odb.read(oid)[1])

    def hunks(self, commit: SourceCommit, path: str) -> Hunks | None:
        """The zero-context hunks of `commit` on `path`; None if it created the file (or the
        file is binary, or was replaced by a directory)."""
        key = (commit.sha, path)
        if key not in self._hunks:
            assert commit.parent is not None
            old, new = self.read(commit.parent, path), self.read(commit.sha, path)
            found: Hunks | None = None
            if old is not None and new is not None:
                patch = _patch(old, new, 0)
                if not patch.delta.is_binary:
                    found = [
                        (h.old_start, h.old_lines, h.new_start, h.new_lines) for h in patch.hunks
                    ]
            self._hunks[key] = found
        return self._hunks[key]

    def relied_on(self, commit: SourceCommit, path: str) -> list[int]:
        key = (commit.sha, path)
        found = self._relied.get(key)
        if found is None:
            assert commit.parent is not None
            old = self.read(commit.parent, path)
            found = self._relied[key] = relied_on_lines(old, self.read(commit.sha, path))
        return found

    def patch_id(self, commit: SourceCommit) -> str:
        """`git patch-id --stable` of the commit (libgit2 computes the same)."""
        found = self._patch_ids.get(commit.sha)
        if found is None:
            assert commit.parent is not None
            diff = self.repo.diff(commit.parent, commit.sha)
            found = self._patch_ids[commit.sha] = str(diff.patchid)
        return found


def _patch(old: bytes | None, new: bytes | None, context: int) -> pygit2.Patch:
    return pygit2.Patch.create_from(old or b"", new or b"", context_lines=context)


def relied_on_lines(old: bytes | None, new: bytes | None) -> list[int]:
    """Line numbers (in `old`) that the change old -> new removes or shows as context."""
    if old is None:
        return []
    patch = _patch(old, new, CONTEXT)
    if patch.delta.is_binary:
        return []
    return [
        line.old_lineno
        for hunk in patch.hunks
        for line in hunk.lines
        if line.origin in ("-", " ") and line.old_lineno > 0
    ]


def _map_back(hunks: Sequence[tuple[int, int, int, int]], line: int) -> int | None:
    """Where `line` of the new side was on the old side; None if this change added it."""
    shift = 0
    for _old_start, old_lines, new_start, new_lines in hunks:
        if new_lines and new_start <= line < new_start + new_lines:
            return None
        # With zero context a pure deletion sits after line `new_start`.
        end = new_start + new_lines if new_lines else new_start + 1
        if line >= end:
            shift += old_lines - new_lines
        else:
            break
    return line + shift


def line_origins(
    files: SourceFiles,
    chain: Sequence[SourceCommit],
    path: str,
    lines: Collection[int],
) -> dict[str, list[int]]:
    """For lines of `path` as of the newest commit of `chain`, the commits of `chain` that
    wrote them (sha -> line numbers as given); lines older than the chain are left out."""
    pending = {n: n for n in lines}
    found: dict[str, list[int]] = {}
    for commit in reversed(chain):
        if not pending:
            break
        if path not in commit.paths or commit.parent is None:
            continue
        hunks = files.hunks(commit, path)
        if hunks is None:  # created here (or binary, or replaced by a directory)
            found.setdefault(commit.sha, []).extend(sorted(pending.values()))
            break
        moved: dict[int, int] = {}
        for now, asked in pending.items():
            before = _map_back(hunks, now)
            if before is None:
                found.setdefault(commit.sha, []).append(asked)
            else:
                moved[before] = asked
        pending = moved
    return {sha: sorted(nums) for sha, nums in found.items()}


def spans(numbers: Sequence[int]) -> str:
    """`[10, 11, 12, 15]` -> "10-12, 15", for reasons people read."""
    ordered = sorted(set(numbers))
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(out)
