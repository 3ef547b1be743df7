"""Whether a pick lands as its source commit did: the same lines removed and added.

A 3-way merge can be clean and still not carry the whole change: a hunk removing lines that a
commit missing from the branch introduced finds nothing to remove, and the merge drops it
without a word. `PickCheck.differences` compares the pick's change on the branch (ours ->
result) with the source commit's (base -> theirs), path by path, and says where and how they
differ.

The rule, per path, with zero-context hunks (each: the lines it removes and the lines it adds,
whitespace aside, as `git patch-id --stable` ignores it; line numbers do not count):

- a path that holds, after the pick, exactly what it holds after the commit on source has the
  whole change (an empty pick of a change the branch already has; a revert of a commit the
  branch never had);
- otherwise the branch's hunks are the source's, in order, except for source hunks the branch
  already had: a merge leaves a hunk out only where ours made the same change, so its added
  lines are there already;
- but a source hunk that only removes lines is never taken as already there: nothing on the
  branch shows it was made, and it is exactly the hunk a missing commit's lines make the merge
  drop;
- the same removed and added lines, hunked differently (a diff may align repeated lines such
  as `}` or blank ones either way), are the same change.

Cheap where it matters: a path where ours still equals the base took theirs whole, so only the
files the merge had to combine (`Merge.touched`) are compared. There, a clean 3-way file merge
lands each hunk of theirs as it is or leaves it out where ours made the same change, so the
branch's diff is needed only when the source has a hunk that only removes lines (134 of 479
such files on the pick benchmark). Diffs skip the lines both files share at either end, and
diffs and verdicts are cached by blob IDs (the same fix lands on every point release of a
line, onto the same file versions). After a full `merge_trees` (renames), the trees are walked
where they differ and every path is compared.

With `context=True`, `differences` also compares the 3-line-context fingerprints (what
`git patch-id` hashes): the prerequisite search prefers sets with which even the context
matches (`faithful` there).
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pygit2

from bot.git.blame import CONTEXT
from bot.git.objects import ObjectStore
from bot.git.pick import Merge
from bot.git.trees import GITLINK, TREE, Entries, Entry

Fingerprint = tuple[bool, bool, tuple[tuple[str, bytes], ...]]
Hunk = tuple[tuple[bytes, ...], tuple[bytes, ...]]  # (removed lines, added lines)
_EMPTY: Entries = {}
_CACHE_SIZE = 50_000


def fingerprint(old: bytes | None, new: bytes | None, context: int = CONTEXT) -> Fingerprint:
    """What `git patch-id --stable` hashes of one file's diff: each changed or context line
    without its whitespace, no line numbers; plus whether the file is added or deleted."""
    patch = pygit2.Patch.create_from(old or b"", new or b"", context_lines=context)
    if patch.delta.is_binary:
        body: tuple[tuple[str, bytes], ...] = (("binary", (old or b"") + b"\0" + (new or b"")),)
    else:
        body = tuple(
            (line.origin, b"".join(line.raw_content.split()))
            for hunk in patch.hunks
            for line in hunk.lines
        )
    return (old is None, new is None, body)


def hunks(old: bytes, new: bytes) -> tuple[Hunk, ...] | None:
    """The zero-context hunks of old -> new, lines without whitespace; None if binary.

    The lines both have at the start and at the end are cut off first: a pick changes a few
    lines of files of thousands, and the diff then costs what those lines cost (libgit2
    hashes every line it is given: 2 ms for Xen's hvm.c).
    """
    start, old_end, new_end = _changed_span(old, new)
    # Named: the patch's lines point into these buffers, which must outlive it.
    old_part, new_part = old[start:old_end], new[start:new_end]
    patch = pygit2.Patch.create_from(old_part, new_part, context_lines=0)
    if patch.delta.is_binary:
        return None
    out = []
    for hunk in patch.hunks:
        removed, added = [], []
        for line in hunk.lines:
            stripped = b"".join(line.raw_content.split())
            if line.origin == "-":
                removed.append(stripped)
            elif line.origin == "+":
                added.append(stripped)
        out.append((tuple(removed), tuple(added)))
    return tuple(out)


def _changed_span(old: bytes, new: bytes) -> tuple[int, int, int]:
    """(start, old end, new end): whole lines before `start` and after the ends are equal."""
    shorter = min(len(old), len(new))
    same = _common_length(old, new, shorter, lambda a, i, j: a[i:j])
    start = old.rfind(b"\n", 0, same) + 1  # that newline is in both
    tail = _common_length(old, new, shorter - start, lambda a, i, j: a[len(a) - j : len(a) - i])
    cut = old.find(b"\n", len(old) - tail) + 1 if tail else 0  # a newline in both, or none
    if cut == 0:
        return start, len(old), len(new)
    return start, cut, cut + len(new) - len(old)


_CHUNK = 4096


def _common_length(
    old: bytes, new: bytes, limit: int, part: Callable[[bytes, int, int], bytes]
) -> int:
    """The largest n <= limit with equal part(old, 0, n) and part(new, 0, n) (`part(x, i, j)`
    is bytes i to j of x, from the start or from the end): chunk by chunk, then by bisection
    in the first chunk that differs. Bytes comparisons run at memory speed; a loop over lines
    would not."""
    low = 0
    while low < limit:
        high = min(low + _CHUNK, limit)
        if part(old, low, high) != part(new, low, high):
            break
        low = high
    else:
        return limit
    high -= 1  # the chunk differs: the answer is in [low, high)
    while low < high:
        mid = (low + high + 1) // 2
        if part(old, low, mid) == part(new, low, mid):
            low = mid
        else:
            high = mid - 1
    return low


@dataclass(frozen=True)
class Difference:
    """A path where a clean pick's change differs from its source commit's."""

    path: str
    what: str  # e.g. "2 lines removed on source are not removed on the branch"
    partial: bool = True  # False: the same lines, only their context differs


class PickCheck:
    """Compares picks with their source commits; one per store (see `pick_check`)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._hunks: dict[tuple[bytes | None, bytes | None], tuple[Hunk, ...] | None] = {}
        self._verdicts: dict[tuple[Entry | bool | None, ...], str | None] = {}
        self._fingerprints: dict[tuple[bytes | None, bytes | None], Fingerprint] = {}
        self.diffs = 0  # file pairs diffed (the cost), for benchmarks

    def differences(
        self, base: str, theirs: str, ours: str, merge: Merge, *, context: bool = False
    ) -> tuple[Difference, ...]:
        """How the clean `merge` of base -> theirs onto `ours` (trees by ID) changes the branch
        differently than the source commit changed base. With `context`, paths where the same
        lines land with other context lines around them are reported too (`partial` False)."""
        assert merge.tree is not None, "only a clean merge has a change to compare"
        out: list[Difference] = []
        if merge.touched is not None:  # the path-limited merge: elsewhere, theirs is taken
            for path, b, t, o, r in merge.touched:
                self._entry(path, b, t, o, r, out, context, merged=True)
        elif (ours, merge.tree) != (base, theirs) and not ours == merge.tree == theirs:
            roots = [bytes.fromhex(x) for x in (base, theirs, ours, merge.tree)]
            self._walk(b"", (roots[0], roots[1], roots[2], roots[3]), out, context)
        return tuple(out)

    # -- the walk ---------------------------------------------------------------------------

    def _walk(
        self,
        prefix: bytes,
        trees: tuple[bytes | None, bytes | None, bytes | None, bytes | None],
        out: list[Difference],
        context: bool,
    ) -> None:
        """Every path where base and theirs, or ours and the result, differ (`trees` in that
        order): after a full `merge_trees`, whose renames can change paths the source commit
        does not."""
        eb, et, eo, er = (self.store.tree_entries(x) if x else _EMPTY for x in trees)
        names = {n for n, e in eb.items() if et.get(n) != e}
        names.update(n for n in et if n not in eb)
        names.update(n for n, e in eo.items() if er.get(n) != e)
        names.update(n for n in er if n not in eo)
        for name in sorted(names):
            nb, nt, no, nr = eb.get(name), et.get(name), eo.get(name), er.get(name)
            present = [e for e in (nb, nt, no, nr) if e is not None]
            if (no, nr) != (nb, nt) and all(e[0] == TREE for e in present):
                b, t, o, r = (e[1] if e is not None else None for e in (nb, nt, no, nr))
                self._walk(prefix + name + b"/", (b, t, o, r), out, context)
            else:
                self._entry(prefix + name, nb, nt, no, nr, out, context)

    def _entry(
        self,
        path: bytes,
        b: Entry | None,
        t: Entry | None,
        o: Entry | None,
        r: Entry | None,
        out: list[Difference],
        context: bool,
        *,
        merged: bool = False,
    ) -> None:
        """`merged`: r is the 3-way file merge of (b, o, t), not something renames made."""
        if (o, r) == (b, t) or o == r == t:
            return  # the same change, or the source's result was there already
        if any(e is not None and e[0] == TREE for e in (b, t, o, r)):
            out.append(_difference(path, "a directory on one side is a file on the other"))
            return
        key = (b, t, o, r, merged)
        if key in self._verdicts:
            what = self._verdicts[key]
        else:
            what = self._file(b, t, o, r, merged)
            if len(self._verdicts) >= _CACHE_SIZE:
                self._verdicts.clear()
            self._verdicts[key] = what
        if what is not None:
            out.append(_difference(path, what))
        elif context and self._fingerprint(o, r) != self._fingerprint(b, t):
            what = "the same lines change, with other lines around them"
            out.append(_difference(path, what, partial=False))

    def _file(
        self, b: Entry | None, t: Entry | None, o: Entry | None, r: Entry | None, merged: bool
    ) -> str | None:
        """Why the file's change on the branch (o -> r) is not the source's (b -> t)."""
        if any(e is not None and e[0] == GITLINK for e in (b, t, o, r)):
            return "a submodule lands differently"
        if o == r:  # the pick left the file as it was (not as theirs): was the change there?
            if o is None:
                return "the file is not on the branch"
            if t is None:
                return "the file is deleted on source, not on the branch"
            if (b is None or b[0] != t[0]) and o[0] != t[0]:
                return "its mode changes on source, not on the branch"
            source = self._file_hunks(b, t)
            if source is None:
                return "a binary file changes on source, not on the branch"
            removed = sum(len(h[0]) for h in source if not h[1])
            return _lines_not_removed(removed) if removed else None
        if (b is None, t is None) != (o is None, r is None):
            return "the file is added or deleted on source, not on the branch, or the reverse"
        if _mode_change(b, t) != _mode_change(o, r):
            return "its mode changes differently"
        source = self._file_hunks(b, t)
        if merged and source is not None and all(added for _, added in source):
            # A clean 3-way file merge lands each hunk of theirs, or leaves out one that ours
            # made the same: only a hunk that merely removes lines can be lost unseen.
            return None
        branch = self._file_hunks(o, r)
        if source is None or branch is None:
            return "a binary file lands differently"
        return _compare(source, branch)

    def _file_hunks(self, old: Entry | None, new: Entry | None) -> tuple[Hunk, ...] | None:
        key = (old[1] if old else None, new[1] if new else None)
        if key in self._hunks:
            return self._hunks[key]
        self.diffs += 1
        found = hunks(self._blob(key[0]), self._blob(key[1]))
        if len(self._hunks) >= _CACHE_SIZE:
            self._hunks.clear()
        self._hunks[key] = found
        return found

    def _blob(self, oid: bytes | None) -> bytes:
        return self.store.blob(oid) if oid is not None else b""

    def _fingerprint(self, old: Entry | None, new: Entry | None) -> Fingerprint:
        key = (old[1] if old else None, new[1] if new else None)
        found = self._fingerprints.get(key)
        if found is None:
            a = None if key[0] is None else self.store.blob(key[0])
            z = None if key[1] is None else self.store.blob(key[1])
            if len(self._fingerprints) >= _CACHE_SIZE:
                self._fingerprints.clear()
            found = self._fingerprints[key] = fingerprint(a, z)
        return found


def _difference(path: bytes, what: str, *, partial: bool = True) -> Difference:
    return Difference(path.decode("utf-8", "surrogateescape"), what, partial)


def _mode_change(old: Entry | None, new: Entry | None) -> tuple[bytes | None, bytes | None]:
    """The mode before and after, or (None, None) for a file that keeps its mode."""
    if old is not None and new is not None and old[0] == new[0]:
        return (None, None)
    return (old[0] if old else None, new[0] if new else None)


def _compare(source: Sequence[Hunk], branch: Sequence[Hunk]) -> str | None:
    """None when `branch` is `source` less hunks that add lines (the branch had them), or
    the same lines hunked otherwise; else what differs, counted in lines."""
    i = 0
    for hunk in source:
        if i < len(branch) and branch[i] == hunk:
            i += 1
        elif not hunk[1]:
            break  # a removal the branch does not make: never "there already"
    else:
        if i == len(branch):
            return None
    return _what_differs(source, branch)


def _count(side: int, hunks: Sequence[Hunk]) -> Counter[bytes]:
    return Counter(line for h in hunks for line in h[side])


def _what_differs(source: Sequence[Hunk], branch: Sequence[Hunk]) -> str | None:
    """The lines one side removes or adds and the other does not; None if there are none."""
    parts = []
    for side, verb in ((0, "removed"), (1, "added")):
        src, br = _count(side, source), _count(side, branch)
        missing, extra = (src - br).total(), (br - src).total()
        if missing:
            lines = "1 line" if missing == 1 else f"{missing} lines"
            were = "is" if missing == 1 else "are"
            parts.append(f"{lines} {verb} on source {were} not {verb} on the branch")
        if extra:
            lines = "1 line" if extra == 1 else f"{extra} lines"
            were = "is" if extra == 1 else "are"
            parts.append(f"{lines} {verb} on the branch {were} not {verb} on source")
    return "; ".join(parts) or None


def _lines_not_removed(count: int) -> str:
    lines = "1 line" if count == 1 else f"{count} lines"
    were = "is" if count == 1 else "are"
    return f"{lines} removed on source {were} not removed on the branch"


_CHECKS: weakref.WeakKeyDictionary[ObjectStore, PickCheck] = weakref.WeakKeyDictionary()


def pick_check(store: ObjectStore) -> PickCheck:
    """One checker per store: its caches stay valid (IDs name content) across builds and
    trials that share the store."""
    found = _CHECKS.get(store)
    if found is None:
        found = _CHECKS[store] = PickCheck(store)
    return found
