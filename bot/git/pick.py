"""Three-way tree merges for picks: apply the change base -> theirs onto ours, in memory.

A conflict is reported with its paths and never produces a tree: no conflict markers can
reach a branch.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.git.objects import ObjectStore


@dataclass(frozen=True)
class Merge:
    """The result of one tree merge: `tree` when clean, else the conflicting `paths`."""

    tree: str | None
    conflicts: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return self.tree is not None


class TreeMerger:
    """Merges trees with libgit2's `merge_trees` (rename detection on, as `git merge` does)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def merge(self, base: str, ours: str, theirs: str) -> Merge:
        if ours == base:
            return Merge(theirs)
        if ours == theirs or base == theirs:
            return Merge(ours)
        self.store.flush()
        repo = self.store.repo
        index = repo.merge_trees(base, ours, theirs)
        if index.conflicts is not None:
            paths = sorted(
                {e.path for entry in index.conflicts for e in entry if e is not None}
            )
            return Merge(None, tuple(paths))
        return Merge(str(index.write_tree(repo)))
