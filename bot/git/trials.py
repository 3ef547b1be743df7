"""Trial picks for the prerequisite search: prerequisites then the fix, as tree merges in memory.

The search tries many sets that share their first commits (ddmin splits a pool in source
order), so every prefix built is kept in a trie: a trial only merges what no earlier trial
merged. Every clean pick is checked as the builder checks it (`faithful.py`): one that lands
partially (other lines removed or added than on source) fails like a conflict, at the paths
that differ, since the build would block the XSA for it. A clean fix is moreover *faithful*
when, on every path it changes, its diff on the branch has the same `git patch-id --stable`
content as on source (the changed lines and their context, whitespace and line numbers aside):
the search prefers such sets. The comparisons read blobs from the object store, so they need
neither a work tree nor a flush of the objects the merges made.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pygit2

from bot.core.prereqs import Trial
from bot.git.faithful import pick_check
from bot.git.objects import ObjectStore
from bot.git.pick import TreeMerger
from bot.git.trees import parse_tree_ids


class TreeReader:
    """Blob IDs by path in any tree of the store (made in memory or read from the repo)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._trees: dict[str, dict[str, str]] = {}

    def _entries(self, tree: str) -> dict[str, str]:
        found = self._trees.get(tree)
        if found is None:
            kind, data = self.store.read(tree)
            if kind != "tree":
                raise ValueError(f"{tree} is a {kind}, not a tree")
            found = self._trees[tree] = parse_tree_ids(data)
        return found

    def blob_id(self, tree: str, path: str) -> str | None:
        """The object at `path` (a blob, or a tree for a directory); None if absent."""
        oid: str | None = tree
        for name in path.split("/"):
            if oid is None:
                return None
            try:
                oid = self._entries(oid).get(name)
            except (KeyError, ValueError):  # a blob where a directory was expected
                return None
        return oid

    def read(self, oid: str | None) -> bytes | None:
        return None if oid is None else self.store.read(oid)[1]


_READERS: weakref.WeakKeyDictionary[ObjectStore, TreeReader] = weakref.WeakKeyDictionary()


def tree_reader(store: ObjectStore) -> TreeReader:
    """One reader per store: parsed trees stay valid (IDs name content)."""
    found = _READERS.get(store)
    if found is None:
        found = _READERS[store] = TreeReader(store)
    return found


def commit_trees(repo: pygit2.Repository, sha: str) -> tuple[str, str]:
    """(first parent's tree, tree) of a source commit: what picking it merges."""
    commit = repo[sha].peel(pygit2.Commit)
    return str(commit.parents[0].tree_id), str(commit.tree_id)


@dataclass
class _Node:
    tree: str | None  # None: this pick conflicted
    conflicts: tuple[str, ...] = ()
    unfaithful: tuple[str, ...] = ()  # for a pick of one of the XSA's commits


class TreeTrials:
    """A `TrialPort`: picks prerequisites and the XSA's commits onto `ours_tree`.

    `fixes` are the XSA's picks as the manifest applies them (its listed prerequisites, each
    before the commit it is placed before, and its commits). A candidate goes right before
    `fixes[slots[candidate]]` (default 0: before them all), so one that needs the XSA's first
    commit can come after it; candidates come in source order, so their slots never go down.
    """

    def __init__(
        self,
        store: ObjectStore,
        merger: TreeMerger,
        ours_tree: str,
        fixes: Sequence[str],
        slots: Mapping[str, int] | None = None,
    ) -> None:
        self.store = store
        self.merger = merger
        self.fixes = list(fixes)
        self.slots = slots or {}
        self.check = pick_check(store)
        self._nodes = [_Node(ours_tree)]
        self._children: dict[tuple[int, str], int] = {}
        self._fix_trials: dict[tuple[str, int], Trial] = {}
        self._commit_trees: dict[str, tuple[str, str]] = {}
        self.merges = 0

    def trial(self, prerequisites: Sequence[str]) -> Trial:
        node, done = 0, 0  # `done`: how many of `fixes` are picked
        unfaithful: list[str] = []
        for sha in sorted(prerequisites, key=lambda c: self.slots.get(c, 0)):
            while done < self.slots.get(sha, 0):
                node = self._child(node, self.fixes[done], fix=True)
                found = self._nodes[node]
                if found.tree is None:
                    return Trial(False, False, found.conflicts)
                unfaithful += found.unfaithful
                done += 1
            node = self._child(node, sha, fix=False)
            if self._nodes[node].tree is None:
                return Trial(False, False, self._nodes[node].conflicts, failed=sha)
        tree = self._nodes[node].tree
        assert tree is not None
        # The rest is the XSA's commits only: the same tree gives the same result.
        rest = self._fix_trials.get((tree, done))
        if rest is None:
            rest = self._fix_trials[(tree, done)] = self._fixes_onto(tree, done)
        if not unfaithful or not rest.clean:
            return rest
        paths = tuple(sorted({*unfaithful, *rest.unfaithful}))
        return Trial(True, False, unfaithful=paths)

    def _child(self, node: int, sha: str, *, fix: bool) -> int:
        child = self._children.get((node, sha))
        if child is None:
            child = self._children[(node, sha)] = len(self._nodes)
            tree = self._nodes[node].tree
            assert tree is not None
            self._nodes.append(self._pick(tree, sha, fix=fix))
        return child

    def _trees(self, sha: str) -> tuple[str, str]:
        found = self._commit_trees.get(sha)
        if found is None:
            found = self._commit_trees[sha] = commit_trees(self.store.repo, sha)
        return found

    def _pick(self, tree: str, sha: str, *, fix: bool) -> _Node:
        """One pick, checked as the builder checks it: a partial one fails at the paths that
        differ. For the XSA's own commits (`fix`), where the context differs is noted too."""
        base, theirs = self._trees(sha)
        self.merges += 1
        merge = self.merger.merge(base, tree, theirs)
        if merge.tree is None:
            return _Node(None, merge.conflicts)
        differs = self.check.differences(base, theirs, tree, merge, context=fix)
        partial = tuple(d.path for d in differs if d.partial)
        if partial:
            return _Node(None, partial)
        return _Node(merge.tree, unfaithful=tuple(d.path for d in differs))

    def _fixes_onto(self, tree: str, start: int = 0) -> Trial:
        unfaithful: list[str] = []
        for sha in self.fixes[start:]:
            picked = self._pick(tree, sha, fix=True)
            if picked.tree is None:
                return Trial(False, False, picked.conflicts)
            unfaithful += picked.unfaithful
            tree = picked.tree
        return Trial(True, not unfaithful, unfaithful=tuple(sorted(set(unfaithful))))
