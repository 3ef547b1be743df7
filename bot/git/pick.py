"""Three-way tree merges for picks: apply the change base -> theirs onto ours, in memory.

A conflict is reported with its paths and never produces a tree: no conflict markers can
reach a branch.

`TreeMerger.merge` gives exactly what libgit2's `merge_trees(base, ours, theirs)` with its
defaults (rename detection on) gives, tree ID and conflicts alike, but a pick only looks at the
paths the picked commit changes: it walks base -> theirs, skipping identical subtrees, and per
changed path takes theirs where ours still equals the base, keeps ours where it already equals
theirs, merges one file with libgit2's own file merge where both sides changed it, and rewrites
only the trees on those paths. On Xen's 1,852 XSA picks: about 0.7 ms a pick instead of 10 ms.

Why the shortcuts give libgit2's answer (src/libgit2/merge.c, v1.9): `merge_trees` diffs the
three flattened trees, pairs renames, then resolves each differing path. Rename pairing only
ever joins a path that one side lacks (a source) with one the base lacks and that side has (a
target). A pairing on our side alone (paths the pick leaves alone) or on their side alone where
ours still has the base's version resolves to what path-by-path resolution gives. Every case
where renames could change the outcome involves, on a path the pick changes, a file both sides
added, both deleted, or one deleted and the other changed. Those are decided here only when no
target on the side concerned could pair with the source (no equal blob, libgit2's similarity
score below the threshold for all); otherwise, and for directory/file and file/symlink/submodule
mixtures, non-canonical modes, and files with a merge driver set in attributes, the full
`merge_trees` decides ("fall back"). Directory/file conflicts need a file and a directory under
one name in two of the trees, where one side added or changed something; on a path the pick
leaves alone only ours differs from the base, which libgit2 resolves to ours.

Limits: trees must be canonical (sorted, modes git writes today), as `git fsck` wants; attributes
and `merge.default` are read once per merger; one merger is not for concurrent use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.git import libgit2
from bot.git.filemerge import FileMerger
from bot.git.objects import ObjectStore
from bot.git.similarity import RENAME_THRESHOLD, Similarity
from bot.git.trees import CANONICAL_MODES, REGULAR_MODES, TREE, Entries, Entry, sort_entries

_EMPTY: Entries = {}
_MISSING = b"missing"
_EMPTY_BLOB = bytes.fromhex("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391")


Touched = tuple[bytes, Entry | None, Entry | None, Entry | None, Entry | None]
"""A file both sides changed: (path, base, theirs, ours, result) entries (None: absent)."""


@dataclass(frozen=True)
class Merge:
    """The result of one tree merge: `tree` when clean, else the conflicting `paths`.

    `touched`: the files where ours differed from the base on a path the pick changes, the
    only ones where the result is not simply theirs (what `faithful.py` checks); None when the
    full `merge_trees` decided, which can also change other paths (renames).
    """

    tree: str | None
    conflicts: tuple[str, ...] = ()
    # Not part of the result: two merges with the same tree are the same merge.
    touched: tuple[Touched, ...] | None = field(default=None, compare=False)

    @property
    def clean(self) -> bool:
        return self.tree is not None


@dataclass
class MergeStats:
    merges: int = 0
    fallbacks: int = 0  # handed to the full merge_trees
    file_merges: int = 0  # content merges run
    file_cache_hits: int = 0


class _Fallback(Exception):
    """The path-limited merge cannot promise libgit2's answer here."""


class TreeMerger:
    """Merges trees as libgit2's `merge_trees` does (rename detection on, as `git merge`)."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        file_cache_size: int = 20_000,
        in_memory_file_merge: bool = True,
        libgit2_opener: libgit2.Opener = libgit2.open_loaded,
    ) -> None:
        self.store = store
        self.stats = MergeStats()
        self._files = FileMerger(store, use_buffers=in_memory_file_merge, opener=libgit2_opener)
        # Identical (base, ours, theirs) blob triples recur: the same fix lands on every point
        # release of a line, and each of those branches already has the same file version.
        self._file_cache: dict[tuple[bytes, bytes, bytes], bytes | None] = {}
        self._file_cache_size = file_cache_size
        self._plain_text: dict[bytes, bool] = {}
        # merge.default names the driver for files without a merge attribute.
        self._default_driver = _config_value(store, "merge.default")
        self._conflicts: list[bytes] = []
        self._touched: list[Touched] = []
        self._roots = (b"", b"", b"")
        self._added_memo: dict[tuple[bytes, bytes], tuple[Entry, ...]] = {}
        self._similarity = Similarity(store, opener=libgit2_opener)

    def merge(self, base: str, ours: str, theirs: str) -> Merge:
        self.stats.merges += 1
        if ours == base:
            return Merge(theirs, touched=())
        if base == theirs:
            return Merge(ours, touched=())
        self._conflicts = []
        self._touched = []
        self._roots = roots = (bytes.fromhex(base), bytes.fromhex(ours), bytes.fromhex(theirs))
        try:
            tree = self._merge_trees(*roots, b"")
        except _Fallback:
            self.stats.fallbacks += 1
            return self.full_merge(base, ours, theirs)
        if self._conflicts:
            paths = {p.decode("utf-8", "surrogateescape") for p in self._conflicts}
            return Merge(None, tuple(sorted(paths)))
        touched = tuple(self._touched)
        if tree is None:  # everything deleted: merge_trees writes the empty tree
            return Merge(self.store.write("tree", b""), touched=touched)
        return Merge(tree.hex(), touched=touched)

    def full_merge(self, base: str, ours: str, theirs: str) -> Merge:
        """libgit2's `merge_trees` itself; its inputs are written to the repository first."""
        self.store.materialize([base, ours, theirs])
        repo = self.store.repo
        index = repo.merge_trees(base, ours, theirs)
        if index.conflicts is not None:
            paths = sorted({e.path for entry in index.conflicts for e in entry if e is not None})
            return Merge(None, tuple(paths))
        return Merge(str(index.write_tree(repo)))

    # -- the path-limited merge ----------------------------------------------------------

    def _merge_trees(
        self, base: bytes | None, ours: bytes | None, theirs: bytes | None, prefix: bytes
    ) -> bytes | None:
        """Merge directory `prefix` (base != theirs); returns the new tree, None if empty."""
        if ours == base:
            return theirs
        tree_entries = self.store.tree_entries
        b_entries = tree_entries(base) if base is not None else _EMPTY
        o_entries = tree_entries(ours) if ours is not None else _EMPTY
        t_entries = tree_entries(theirs) if theirs is not None else _EMPTY
        changes: dict[bytes, Entry | None] = {}
        for name, b in b_entries.items():
            t = t_entries.get(name)
            if t != b:
                self._merge_entry(prefix, name, b, o_entries.get(name), t, changes)
        for name, t in t_entries.items():
            if name not in b_entries:
                self._merge_entry(prefix, name, None, o_entries.get(name), t, changes)
        if not changes:
            return ours
        if self._conflicts:
            return ours  # the result is thrown away; only the walk for more conflicts goes on
        merged = dict(o_entries)
        reorder = False  # a parsed tree is in git's order, and replacing a value keeps it
        for name, entry in changes.items():
            if entry is None:
                merged.pop(name, None)
                continue
            old = merged.get(name)
            if old is None or (old[0] == TREE) != (entry[0] == TREE):
                reorder = True  # a new name, or one that now sorts with a "/"
            merged[name] = entry
        if not merged:
            return None  # an index cannot hold an empty directory
        return self.store.write_tree_bin(sort_entries(merged) if reorder else merged)

    def _merge_entry(
        self,
        prefix: bytes,
        name: bytes,
        b: Entry | None,
        o: Entry | None,
        t: Entry | None,
        changes: dict[bytes, Entry | None],
    ) -> None:
        """Resolve one name that differs between base and theirs; record it if ours changes."""
        if o == b:
            result = t
        else:
            # Ours and theirs both differ from the base here.
            modes = [e[0] for e in (b, o, t) if e is not None]
            if not all(m in CANONICAL_MODES for m in modes):
                raise _Fallback
            trees = sum(m == TREE for m in modes)
            if trees == len(modes):
                oid = self._merge_trees(
                    b[1] if b else None,
                    o[1] if o else None,
                    t[1] if t else None,
                    prefix + name + b"/",
                )
                result = (TREE, oid) if oid is not None else None
            elif trees:
                raise _Fallback  # directory/file
            else:
                result = self._merge_file(prefix + name, b, o, t)
                self._touched.append((prefix + name, b, t, o, result))
        if result != o:
            changes[name] = result

    def _merge_file(
        self, path: bytes, b: Entry | None, o: Entry | None, t: Entry | None
    ) -> Entry | None:
        if b is None or o is None or t is None:
            return self._one_side_missing(path, b, o, t)
        if o == t:
            return o
        if b[0] not in REGULAR_MODES or o[0] not in REGULAR_MODES or t[0] not in REGULAR_MODES:
            raise _Fallback  # symlinks and submodules: libgit2's rules, not ours
        if not self._is_plain_text(path):
            raise _Fallback
        key = (b[1], o[1], t[1])
        blob = self._file_cache.get(key, _MISSING)
        if blob is _MISSING:
            self.stats.file_merges += 1
            data = self._files.merge(path, b, o, t)
            blob = None if data is None else self.store.write_bin("blob", data)
            if len(self._file_cache) >= self._file_cache_size:
                self._file_cache.clear()
            self._file_cache[key] = blob
        else:
            self.stats.file_cache_hits += 1
        if blob is None:
            self._conflicts.append(path)
            return o
        # libgit2's merge_file__best_mode: the side that changed the mode wins.
        return (t[0] if o[0] == b[0] else o[0], blob)

    def _one_side_missing(
        self, path: bytes, b: Entry | None, o: Entry | None, t: Entry | None
    ) -> Entry | None:
        """A file deleted on one or both sides, or added on both.

        Rename detection may pair such a path with another one: a path the base has and a side
        lacks (a source) with one the base lacks and that side has (a target). Where no target
        on that side could pair with it (same blob, or libgit2's similarity score at the
        threshold), path-by-path resolution stands.
        """
        base, ours, theirs = self._roots
        if b is not None and o is None and t is not None:
            # Ours deleted, theirs changed: modify/delete, unless ours renamed it.
            if not self._may_pair(b, base, ours):
                self._conflicts.append(path)
                return o
        elif b is not None and o is not None and t is None:
            # Theirs deleted, ours changed: modify/delete, unless theirs renamed it.
            if not self._may_pair(b, base, theirs):
                self._conflicts.append(path)
                return o
        elif (
            b is not None
            and o is None
            and t is None
            and not self._may_pair(b, base, ours)
            and not self._may_pair(b, base, theirs)
        ):
            return None  # deleted on both sides, and neither side can have renamed it
        # Added on both sides (even identically): a target on both sides, and sources (paths
        # the base has and a side lacks) are nearly always there.
        raise _Fallback

    def _may_pair(self, source: Entry, old: bytes, new: bytes) -> bool:
        """Whether `merge_trees` could pair `source` with a path tree `new` has and `old` lacks.

        libgit2 pairs exactly equal blobs (except the empty blob), then, between regular files,
        the most similar above the threshold. Every score below the threshold is proof enough.
        """
        targets = self._added(old, new)
        if not targets:
            return False
        if not self._similarity.available:
            return True
        mode, oid = source
        for t_mode, t_oid in targets:
            if t_oid == oid:
                if oid != _EMPTY_BLOB:
                    return True
            elif (
                mode in REGULAR_MODES
                and t_mode in REGULAR_MODES
                and self._similarity.score(oid, t_oid) >= RENAME_THRESHOLD
            ):
                return True
        return False

    def _added(self, old: bytes, new: bytes) -> tuple[Entry, ...]:
        """The entries of the files tree `new` has where `old` has none (memoised per pair)."""
        key = (old, new)
        found = self._added_memo.get(key)
        if found is None:
            out: list[Entry] = []
            old_entries = self.store.tree_entries(old)
            for name, n in self.store.tree_entries(new).items():
                o = old_entries.get(name)
                if o == n:
                    continue
                if n[0] == TREE:
                    # A new directory, or a directory where a file was: all of it is new.
                    if o is None or o[0] != TREE:
                        out += self._all_files(n[1])
                    else:
                        out += self._added(o[1], n[1])
                elif o is None or o[0] == TREE:
                    out.append(n)  # a new file, or a file where a directory was
            found = tuple(out)
            if len(self._added_memo) >= self._file_cache_size:
                self._added_memo.clear()
            self._added_memo[key] = found
        return found

    def _all_files(self, tree: bytes) -> list[Entry]:
        out: list[Entry] = []
        for entry in self.store.tree_entries(tree).values():
            if entry[0] == TREE:
                out += self._all_files(entry[1])
            else:
                out.append(entry)
        return out

    def _is_plain_text(self, path: bytes) -> bool:
        """Whether `merge_trees` would merge `path` with the built-in text driver."""
        plain = self._plain_text.get(path)
        if plain is None:
            value = self.store.repo.get_attr(path.decode("utf-8", "surrogateescape"), "merge")
            if value is None:
                plain = self._default_driver in (None, "text")
            else:
                plain = value is True or value == "text"
            self._plain_text[path] = plain
        return plain


def _config_value(store: ObjectStore, key: str) -> str | None:
    try:
        value = store.repo.config[key]
    except KeyError:
        return None
    return str(value)
