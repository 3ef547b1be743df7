"""The prerequisite search: the smallest set of candidate commits that makes a fix apply.

Pure: the git side supplies candidates (in widening stages) and a `TrialPort` that picks a set
of candidates and then the fix, in memory. The search prefers sets with which the fix lands
*faithfully* (same patch-id as on `source`) over merely clean ones, and a proven minimum over
an irreducible set when proving is affordable.

A last-resort stage may offer the commits of other XSAs that are blocked on the branch: a fix
that only applies after one of them *waits for* it, and the result says which (`waits_for`)
instead of passing another XSA off as a prerequisite.

Trials are the cost, so the search predicts failures it has already seen: a 3-way merge works
path by path, so the content a set of picks leaves at a path depends only on the picks that
touch that path. If the fix conflicted at path q after set S, every set with the same
q-touching members fails the same way. This needs accurate `Candidate.paths` (None: unknown,
counts as touching every path) and assumes no renames between the picks and the fix. A wrong
prediction (a rename) can cost a missed set or an unfounded `minimal`, never a wrong set: every
chosen set is a real trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Target = Literal["faithful", "clean"]
_TARGETS: tuple[Target, ...] = ("faithful", "clean")


@dataclass(frozen=True)
class Trial:
    """One trial pick of a set of prerequisites and then the fix."""

    clean: bool
    faithful: bool  # the fix landed with the same patch-id as on source (implies clean)
    conflicts: tuple[str, ...] = ()  # conflicting paths of the failing pick
    failed: str | None = None  # the prerequisite whose own pick conflicted; None: the fix
    unfaithful: tuple[str, ...] = ()  # paths where a clean fix landed differently


class TrialPort(Protocol):
    def trial(self, prerequisites: Sequence[str]) -> Trial:
        """Pick these (already in source order), then the fix, in memory."""
        ...


@dataclass(frozen=True)
class Candidate:
    sha: str
    subject: str
    reasons: tuple[str, ...] = ()  # why it is a candidate: which paths or lines
    paths: frozenset[str] | None = None  # paths it changes; None: unknown
    xsa: int | None = None  # a commit of this XSA, blocked on the branch; None: not an XSA's
    # The XSA commit it goes right before, as its source position puts it (after the XSA's
    # commits that precede it on source); None: before the XSA's first commit.
    before: str | None = None


@dataclass(frozen=True)
class Stage:
    """One widening step: `candidates()` returns the whole pool so far, in source order.

    A `last_resort` stage runs only when the stages before it found no set at all, not even a
    clean one: it offers blocked XSAs' commits, which a fix should wait for, never take.
    """

    name: str
    candidates: Callable[[], Sequence[Candidate]]
    last_resort: bool = False


@dataclass(frozen=True)
class Limits:
    max_candidates: int = 200
    max_trials: int = 2000
    max_seconds: float = 30.0
    # Proving a minimum visits smaller sets (most decided by prediction, without a trial, a
    # few microseconds each); past this many the set is only irreducible. The hardest case on
    # real history (XSA-456 on RELEASE-4.17.0, 11 of 43 commits, as a manifest applies it)
    # needs 75,000.
    max_proof_sets: int = 200_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class FinderResult:
    xsa: int
    fix: str
    conflicts: tuple[str, ...]  # what blocked the fix
    candidates: tuple[Candidate, ...]
    chosen: tuple[Candidate, ...]  # in source order; empty if none found (or none needed)
    found: bool
    minimal: bool  # proven minimum among the candidates; else irreducible (or less, if
    # bound_hit says so)
    faithful: bool
    trials: int
    seconds: float
    bound_hit: str | None = None  # "candidates", "trials", "seconds" or "proof-sets"
    widened: tuple[str, ...] = ()  # the widening stages that ran, after the first
    # The blocked XSAs whose commits the set needs: the fix applies only after them, so it
    # waits for them. `chosen` then holds the rest of the set (their own prerequisites, say).
    waits_for: tuple[int, ...] = ()
    limits: Limits = DEFAULT_LIMITS  # what `bound_hit` refers to
    # The XSAs whose proposals (opened in the same pass) the search took as merged: set by
    # the pass's searches, which search each XSA as if the sets found before it were merged.
    assumes: tuple[int, ...] = ()

    @property
    def conclusive(self) -> bool:
        """No set exists: every candidate was searched, the whole source range between the
        base and the fix among them, and none makes the fix apply, not even with the commits
        of XSAs blocked on the branch. A search that stopped at a bound proves nothing."""
        return not self.found and self.bound_hit is None

    def bound(self) -> str:
        """The bound the search stopped at, in words: `the 200-candidate bound`."""
        limits = self.limits
        return {
            "candidates": f"the {limits.max_candidates}-candidate bound",
            "trials": f"the {limits.max_trials}-trial bound",
            "seconds": f"the {limits.max_seconds:g}-second bound",
            "proof-sets": f"the {limits.max_proof_sets}-set bound of the proof",
        }.get(self.bound_hit or "", f"the {self.bound_hit} bound")


class _BoundHit(Exception):
    def __init__(self, bound: str) -> None:
        super().__init__(bound)
        self.bound = bound


@dataclass
class _Best:
    members: int
    faithful: bool


@dataclass
class _Search:
    """Sets of candidates are int bitmasks here: the proof enumerates thousands of them, and
    a prediction is then a few ANDs and set lookups."""

    port: TrialPort
    limits: Limits
    clock: Callable[[], float]
    started: float
    trials: int = 0
    info: dict[str, Candidate] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    bit: dict[str, int] = field(default_factory=dict)
    sha_of: dict[int, str] = field(default_factory=dict)
    by_path: dict[str, int] = field(default_factory=dict)  # path -> candidates changing it
    unknown: int = 0  # candidates whose paths are not known: they touch every path
    _before: dict[str, int] = field(default_factory=dict)
    memo: dict[int, Trial] = field(default_factory=dict)
    # Learned failures, keyed by path: projections of a set onto that path's touchers.
    bad: dict[Target, dict[str, set[int]]] = field(
        default_factory=lambda: {"faithful": {}, "clean": {}}
    )
    bad_pick: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    best: _Best | None = None

    def add(self, c: Candidate, position: int) -> None:
        self.order[c.sha] = position
        self.info[c.sha] = c
        self._before.clear()
        if c.sha in self.bit:
            return
        b = self.bit[c.sha] = 1 << len(self.bit)
        self.sha_of[b] = c.sha
        if c.paths is None:
            self.unknown |= b
        else:
            for path in c.paths:
                self.by_path[path] = self.by_path.get(path, 0) | b

    # -- sets as masks ----------------------------------------------------------------------

    def mask(self, members: Iterable[str]) -> int:
        out = 0
        for m in members:
            out |= self.bit[m]
        return out

    def members(self, mask: int) -> list[str]:
        return self.ordered(self.sha_of[b] for b in _bits(mask))

    def ordered(self, members: Iterable[str]) -> list[str]:
        return sorted(members, key=self.order.__getitem__)

    def touch(self, path: str) -> int:
        return self.by_path.get(path, 0) | self.unknown

    def before(self, sha: str) -> int:
        found = self._before.get(sha)
        if found is None:
            place = self.order[sha]
            found = self._before[sha] = self.mask(
                m for m, p in self.order.items() if p < place and m in self.bit
            )
        return found

    # -- trials -----------------------------------------------------------------------------

    def predicted_fail(self, mask: int, target: Target) -> bool:
        for path, seen in self.bad[target].items():
            if mask & self.touch(path) in seen:
                return True
        for (sha, path), seen in self.bad_pick.items():
            if mask & self.bit[sha] and mask & self.before(sha) & self.touch(path) in seen:
                return True
        return False

    def run(self, mask: int) -> Trial:
        found = self.memo.get(mask)
        if found is not None:
            return found
        if self.trials >= self.limits.max_trials:
            raise _BoundHit("trials")
        if self.clock() - self.started > self.limits.max_seconds:
            raise _BoundHit("seconds")
        self.trials += 1
        result = self.port.trial(self.members(mask))
        self.memo[mask] = result
        self.learn(mask, result)
        return result

    def learn(self, mask: int, t: Trial) -> None:
        if not t.clean and t.failed is not None:
            before = mask & self.before(t.failed)
            for path in t.conflicts:
                seen = self.bad_pick.setdefault((t.failed, path), set())
                seen.add(before & self.touch(path))
        elif not t.clean:
            for target in _TARGETS:
                for path in t.conflicts:
                    self.bad[target].setdefault(path, set()).add(mask & self.touch(path))
        elif not t.faithful:
            for path in t.unfaithful:
                self.bad["faithful"].setdefault(path, set()).add(mask & self.touch(path))
        if t.clean:
            size = mask.bit_count()
            b = self.best
            if b is None or (t.faithful, -size) > (b.faithful, -b.members.bit_count()):
                self.best = _Best(mask, t.faithful)

    def works_mask(self, mask: int, target: Target) -> bool:
        if mask not in self.memo and self.predicted_fail(mask, target):
            return False
        t = self.run(mask)
        return t.faithful if target == "faithful" else t.clean

    def works(self, members: Iterable[str], target: Target) -> bool:
        return self.works_mask(self.mask(members), target)

    # -- minimising -------------------------------------------------------------------------

    def ddmin(self, pool: list[str], target: Target) -> list[str]:
        """Delta debugging (Zeller): shrink a working set by chunks, then one at a time."""
        current = pool
        n = 2
        while len(current) >= 2:
            chunks = _split(current, n)
            reduced = False
            for chunk in chunks:
                if self.works(chunk, target):
                    current, n, reduced = chunk, 2, True
                    break
            if not reduced:
                for chunk in chunks:
                    rest = [m for m in current if m not in set(chunk)]
                    if self.works(rest, target):
                        current, n, reduced = rest, max(n - 1, 2), True
                        break
            if not reduced:
                if n >= len(current):
                    break
                n = min(len(current), 2 * n)
        return self.irreducible(current, target)

    def irreducible(self, members: list[str], target: Target) -> list[str]:
        """Drop single commits while the set still works (ddmin's last round already did
        most of this; sets that worked by luck of non-monotonic merges need the pass)."""
        changed = True
        while changed and len(members) > 1:
            changed = False
            for m in members:
                rest = [x for x in members if x != m]
                if self.works(rest, target):
                    members, changed = rest, True
                    break
        return members

    def smallest(self, pool: list[str], found: list[str], target: Target) -> tuple[list[str], bool]:
        """The smallest working set within `pool`, given the working set `found`; and whether
        it is proven (every smaller set ruled out within the bound).

        Branch and bound, driven by the failures learned so far: a set that repeats a failing
        projection at some path fails there, so every working superset adds one of that path's
        touchers (for a failed pick, one that comes before it). The search branches on the
        fewest such commits, each branch excluding the ones tried before it (no set is
        visited twice), and gives up a branch when the disjoint failures it still has to fix
        cannot all be fixed within the size to beat. Enumerating the smaller sets gave up on
        XSA-434 at RELEASE-4.17.0 (22 of 64 candidates: C(64, 21) sets of 21 alone); this
        proves its 22 minimal with 140 trials in all.
        """
        allowed = self.mask(pool)
        best = self.mask(found)
        # Nearest the fix first: the likeliest to share its context, so good sets come early.
        rank = {self.bit[m]: i for i, m in enumerate(reversed(pool))}
        nodes = 0
        complete = True

        def visit(mask: int, excluded: int) -> None:
            nonlocal best, nodes, complete
            size = mask.bit_count()
            if not complete or size >= best.bit_count():
                return
            nodes += 1
            if nodes > self.limits.max_proof_sets:
                complete = False
                return
            if nodes % 1024 == 0 and self.clock() - self.started > self.limits.max_seconds:
                raise _BoundHit("seconds")
            free = allowed & ~excluded
            needs = self.must_add(mask, free, target)
            if not needs:
                t = self.run(mask)
                if t.faithful if target == "faithful" else t.clean:
                    best = mask
                    return
                # A failure that names no path teaches nothing: any commit may be the fix.
                needs = self.must_add(mask, free, target) or [free & ~mask]
            disjoint, used = 0, 0
            for need in sorted(needs, key=int.bit_count):
                if not need:
                    return  # a failure that no allowed commit can fix
                if not need & used:
                    disjoint += 1
                    used |= need
            if size + disjoint >= best.bit_count():
                return
            for b in sorted(_bits(min(needs, key=int.bit_count)), key=rank.__getitem__):
                visit(mask | b, excluded)
                excluded |= b

        visit(0, 0)
        return self.members(best), complete

    def must_add(self, mask: int, allowed: int, target: Target) -> list[int]:
        """For each learned failure that `mask` repeats, the commits (within `allowed`) of
        which a working superset must add at least one: those that change the projection."""
        out = []
        for path, seen in self.bad[target].items():
            touching = self.touch(path)
            if mask & touching in seen:
                out.append(touching & allowed & ~mask)
        for (sha, path), seen in self.bad_pick.items():
            if mask & self.bit[sha]:
                touching = self.before(sha) & self.touch(path)
                if mask & touching in seen:
                    out.append(touching & allowed & ~mask)
        return out


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low)
        mask ^= low
    return out


def _split(items: list[str], n: int) -> list[list[str]]:
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        if end > start:
            out.append(items[start:end])
        start = end
    return out


def find_minimal_set(
    port: TrialPort,
    stages: Sequence[Stage],
    *,
    xsa: int,
    fix: str,
    limits: Limits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.monotonic,
) -> FinderResult:
    """Search the stages' pools, narrowest first, for the smallest set that makes `fix` apply.

    A stage whose whole pool makes the fix land faithfully is minimised; a pool that only makes
    it land cleanly is kept as a fallback while wider stages look for a faithful one. A
    `last_resort` stage is searched only when there is not even such a fallback.
    """
    s = _Search(port, limits, clock, clock())
    pool: list[str] = []
    widened: list[str] = []
    bound: str | None = None
    conflicts: tuple[str, ...] = ()
    chosen: list[str] = []
    minimal = False

    def result(found: bool) -> FinderResult:
        faithful = found and s.memo[s.mask(chosen)].faithful
        picked = [s.info[m] for m in s.ordered(chosen)]
        return FinderResult(
            xsa=xsa,
            fix=fix,
            conflicts=conflicts,
            candidates=tuple(s.info[m] for m in pool),
            chosen=tuple(c for c in picked if c.xsa is None),
            found=found,
            minimal=found and minimal,
            faithful=faithful,
            trials=s.trials,
            seconds=clock() - s.started,
            bound_hit=bound,
            widened=tuple(widened),
            waits_for=tuple(sorted({c.xsa for c in picked if c.xsa is not None})),
            limits=limits,
        )

    try:
        first = s.run(0)
        conflicts = first.conflicts
        if first.clean:  # nothing needed: the fix applies as it is
            minimal = True
            return result(True)
        fallback: list[str] | None = None
        last_resort = False
        for index, stage in enumerate(stages):
            if stage.last_resort and fallback is not None:
                break
            if index:
                widened.append(stage.name)
            pool, capped = _grow(s, pool, stage.candidates(), limits.max_candidates)
            if capped:
                bound = "candidates"
            usable = _drop_failing_picks(s, pool)
            if usable is None:
                continue
            if s.memo[s.mask(usable)].faithful:
                chosen, minimal, proof_bound = _minimise(s, usable, "faithful", stage.last_resort)
                bound = bound or proof_bound
                return result(True)
            if fallback is None:
                fallback, last_resort = usable, stage.last_resort
        if fallback is not None:
            chosen, minimal, proof_bound = _minimise(s, fallback, "clean", last_resort)
            bound = bound or proof_bound
            return result(True)
        return result(False)
    except _BoundHit as hit:
        bound = hit.bound
        if s.best is None:
            return result(False)
        chosen, minimal = s.members(s.best.members), False
        return result(True)


def _grow(
    s: _Search, pool: list[str], fresh: Sequence[Candidate], cap: int
) -> tuple[list[str], bool]:
    """The new pool, in source order: the old one plus as many new candidates as fit, the
    ones nearest the fix first (they are the likeliest to share its context).

    Blocked XSAs' commits always fit: they are few, and they are what a last-resort stage is
    for, so the cap counts only the others.
    """
    for position, c in enumerate(fresh):
        s.add(c, position)
    kept = set(pool)
    room = cap - sum(1 for m in kept if s.info[m].xsa is None)
    new = [c.sha for c in fresh if c.sha not in kept and c.xsa is None]
    capped = len(new) > room
    if capped:
        new = new[len(new) - max(room, 0) :] if room > 0 else []
    kept.update(new)
    kept.update(c.sha for c in fresh if c.xsa is not None)
    return [c.sha for c in fresh if c.sha in kept], capped


def _drop_failing_picks(s: _Search, pool: list[str]) -> list[str] | None:
    """The pool without the commits that do not pick themselves; None if the fix still fails.

    A candidate that conflicts needs something outside the pool; leaving it out lets the rest
    be tried, and a wider stage may bring what it needs.
    """
    usable = list(pool)
    while True:
        t = s.run(s.mask(usable))
        if t.clean:
            return usable
        if t.failed is None or t.failed not in usable:
            return None
        usable.remove(t.failed)


_FIRST_SINGLES = 8


def _minimise(
    s: _Search, usable: list[str], target: Target, last_resort: bool = False
) -> tuple[list[str], bool, str | None]:
    """An irreducible set by ddmin, then the smallest by branch and bound from there.

    Most fixes need one commit (the median set on real history), and a single that touches
    every conflicting path is cheap to try, so a few of those go first. ddmin's set bounds the
    search from the start (2,959 trials over the benchmark's 179 conflicts, 3,094 without), and
    is the answer, irreducible, when the proof runs out of bound.

    A last resort's set is not proven: it is never proposed, only the XSAs it needs are
    reported, and an irreducible set needs each XSA it has. Over a whole range of candidates
    the proof cost 1.1 s of the 1.6 s that XSA-499 took at RELEASE-4.19.0.
    """
    singles = [m for m in usable if not s.predicted_fail(s.bit[m], target)]
    if len(singles) <= _FIRST_SINGLES:
        for m in singles:
            if s.works((m,), target):
                return [m], True, None
    found = s.ddmin(usable, target)
    if last_resort:
        return found, False, None
    best, complete = s.smallest(usable, found, target)
    return best, complete, None if complete else "proof-sets"
