"""The pure prerequisite search, over a fake trial port made from a rule table."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.core.prereqs import Candidate, Limits, Stage, Trial, _Search, find_minimal_set

FIX = "f" * 40


@dataclass
class RulePort:
    """The fix applies when the picked set contains one of `clean_if` (faithfully when it
    contains one of `faithful_if`); a commit in `needs` picks only after all of its needs."""

    clean_if: list[set[str]]
    faithful_if: list[set[str]] = field(default_factory=list)
    needs: dict[str, set[str]] = field(default_factory=dict)
    conflict_path: str = "xen/fix.c"
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def trial(self, prerequisites: Sequence[str]) -> Trial:
        self.calls.append(tuple(prerequisites))
        picked: set[str] = set()
        for sha in prerequisites:
            if not self.needs.get(sha, set()) <= picked:
                return Trial(False, False, (f"{sha}.c",), failed=sha)
            picked.add(sha)
        if any(rule <= picked for rule in self.faithful_if):
            return Trial(True, True)
        if any(rule <= picked for rule in self.clean_if):
            return Trial(True, False, unfaithful=(self.conflict_path,))
        return Trial(False, False, (self.conflict_path,))


def cands(*names: str, paths: dict[str, set[str]] | None = None) -> list[Candidate]:
    known = paths or {}
    return [
        Candidate(n, f"subject {n}", (f"reason {n}",), frozenset(known[n]) if n in known else None)
        for n in names
    ]


def stages(*pools: list[Candidate]) -> list[Stage]:
    names = ["narrow", "files", "range"]
    return [Stage(names[i], lambda pool=pool: pool) for i, pool in enumerate(pools)]


def chosen(result: object) -> tuple[str, ...]:
    return tuple(c.sha for c in result.chosen)  # type: ignore[attr-defined]


def test_fix_that_applies_needs_nothing() -> None:
    port = RulePort(clean_if=[set()], faithful_if=[set()])
    r = find_minimal_set(port, stages(cands("a", "b")), xsa=1, fix=FIX)
    assert r.found and r.faithful and r.minimal
    assert chosen(r) == () and r.trials == 1 and r.conflicts == ()


def test_single_prerequisite_is_a_proven_minimum() -> None:
    port = RulePort(clean_if=[{"c"}], faithful_if=[{"c"}])
    r = find_minimal_set(port, stages(cands("a", "b", "c", "d")), xsa=7, fix=FIX)
    assert chosen(r) == ("c",)
    assert r.found and r.minimal and r.faithful and r.bound_hit is None
    assert r.conflicts == ("xen/fix.c",) and r.widened == ()
    assert [c.sha for c in r.candidates] == ["a", "b", "c", "d"]


# More candidates than the search tries one by one up front, so ddmin runs: it keeps the first
# half, which works thanks to {a, b}, and cannot shrink that pair; {j} alone also works.
TEN = "abcdefghij"
PAIR_OR_J = [{"a", "b"}, {"j"}]


def test_proof_finds_a_smaller_set_than_ddmin() -> None:
    port = RulePort(clean_if=PAIR_OR_J, faithful_if=PAIR_OR_J)
    r = find_minimal_set(port, stages(cands(*TEN)), xsa=1, fix=FIX)
    assert chosen(r) == ("j",) and r.minimal


def test_irreducible_when_the_proof_is_not_affordable() -> None:
    port = RulePort(clean_if=PAIR_OR_J, faithful_if=PAIR_OR_J)
    limits = Limits(max_proof_sets=0)
    r = find_minimal_set(port, stages(cands(*TEN)), xsa=1, fix=FIX, limits=limits)
    assert chosen(r) == ("a", "b")
    assert r.found and not r.minimal and r.bound_hit == "proof-sets"


def test_two_commit_set_in_source_order() -> None:
    port = RulePort(clean_if=[{"b", "e"}], faithful_if=[{"b", "e"}])
    r = find_minimal_set(port, stages(cands("a", "b", "c", "d", "e", "f")), xsa=1, fix=FIX)
    assert chosen(r) == ("b", "e") and r.minimal
    assert all(list(call) == sorted(call) for call in port.calls)


def test_faithful_set_preferred_over_a_smaller_clean_one() -> None:
    port = RulePort(clean_if=[{"a"}], faithful_if=[{"b", "c"}])
    r = find_minimal_set(port, stages(cands("a", "b", "c")), xsa=1, fix=FIX)
    assert chosen(r) == ("b", "c") and r.faithful and r.minimal


def test_only_a_clean_set_is_reported_not_faithful() -> None:
    port = RulePort(clean_if=[{"b"}])
    pools = (cands("a", "b"), cands("a", "b", "c"), cands("a", "b", "c", "d"))
    r = find_minimal_set(port, stages(*pools), xsa=1, fix=FIX)
    assert chosen(r) == ("b",) and r.found and not r.faithful and r.minimal
    # Every stage was searched for a faithful set before settling.
    assert r.widened == ("files", "range")


def test_widens_when_the_narrow_pool_fails() -> None:
    port = RulePort(clean_if=[{"a", "x"}], faithful_if=[{"a", "x"}])
    narrow = cands("a", "b")
    files = cands("a", "x", "b")
    r = find_minimal_set(port, stages(narrow, files, cands("a", "x", "b", "z")), xsa=1, fix=FIX)
    assert chosen(r) == ("a", "x") and r.widened == ("files",)
    assert [c.sha for c in r.candidates] == ["a", "x", "b"]


def test_candidate_that_does_not_pick_is_left_out() -> None:
    # "x" conflicts on its own (it needs "y", not a candidate); the fix needs only "b".
    port = RulePort(clean_if=[{"b"}], faithful_if=[{"b"}], needs={"x": {"y"}})
    r = find_minimal_set(port, stages(cands("a", "x", "b")), xsa=1, fix=FIX)
    assert chosen(r) == ("b",) and r.minimal


def test_no_set_at_all() -> None:
    port = RulePort(clean_if=[])
    pools = (cands("a"), cands("a", "b"), cands("a", "b", "c"))
    r = find_minimal_set(port, stages(*pools), xsa=1, fix=FIX)
    assert not r.found and chosen(r) == () and not r.minimal and not r.faithful
    assert r.widened == ("files", "range") and r.bound_hit is None


def test_trials_bound_is_reported() -> None:
    port = RulePort(clean_if=[{"h"}], faithful_if=[{"h"}])
    limits = Limits(max_trials=1)
    r = find_minimal_set(port, stages(cands(*"abcdefgh")), xsa=1, fix=FIX, limits=limits)
    assert not r.found and r.bound_hit == "trials" and r.trials == 1


def test_bound_keeps_the_best_set_found_so_far() -> None:
    port = RulePort(clean_if=[{"h"}], faithful_if=[{"h"}])
    limits = Limits(max_trials=3)
    r = find_minimal_set(port, stages(cands(*"abcdefgh")), xsa=1, fix=FIX, limits=limits)
    assert r.found and r.bound_hit == "trials" and not r.minimal and r.faithful
    assert "h" in chosen(r)


def test_seconds_bound_is_reported() -> None:
    ticks = iter(range(0, 1000, 10))
    port = RulePort(clean_if=[{"h"}], faithful_if=[{"h"}])
    limits = Limits(max_seconds=15)
    r = find_minimal_set(
        port, stages(cands(*"abcdefgh")), xsa=1, fix=FIX, limits=limits, clock=lambda: next(ticks)
    )
    assert r.bound_hit == "seconds" and not r.found and r.trials < 3


def test_candidates_bound_keeps_the_narrow_ones_and_the_nearest() -> None:
    port = RulePort(clean_if=[{"a", "y"}], faithful_if=[{"a", "y"}])
    limits = Limits(max_candidates=3)
    pools = (cands("a"), cands("a", "b", "c", "x", "y"))
    r = find_minimal_set(port, stages(*pools), xsa=1, fix=FIX, limits=limits)
    assert [c.sha for c in r.candidates] == ["a", "x", "y"]
    assert chosen(r) == ("a", "y") and r.bound_hit == "candidates"


def test_known_paths_spare_trials_that_cannot_work() -> None:
    # Only "c" touches the conflicting path: no set without it is ever tried.
    touched = {n: {f"{n}.c"} for n in "abdefgh"} | {"c": {"xen/fix.c"}}
    port = RulePort(clean_if=[{"c"}], faithful_if=[{"c"}])
    r = find_minimal_set(port, stages(cands(*"abcdefgh", paths=touched)), xsa=1, fix=FIX)
    assert chosen(r) == ("c",) and r.minimal
    assert all("c" in call for call in port.calls[1:])
    assert r.trials == 3  # none, the whole pool, then "c" alone


# -- blocked XSAs, the last resort ---------------------------------------------------------------


def last_resort(*names: str, xsa: int = 5) -> Stage:
    pool = [*cands("a", "b"), *(Candidate(n, f"XSA-{xsa} part {n}", xsa=xsa) for n in names)]
    return Stage("blocked XSAs", lambda: pool, last_resort=True)


def test_a_set_that_needs_a_blocked_xsa_waits_for_it() -> None:
    # "y" is XSA-5's and needs "x", also XSA-5's, and "b", an ordinary commit.
    port = RulePort(clean_if=[{"y"}], faithful_if=[{"y"}], needs={"y": {"x", "b"}})
    r = find_minimal_set(port, [*stages(cands("a", "b")), last_resort("x", "y")], xsa=7, fix=FIX)
    # Irreducible, not proven: the set is never proposed, only the XSAs it needs matter.
    assert r.found and r.faithful and not r.minimal and r.bound_hit is None
    assert r.waits_for == (5,) and chosen(r) == ("b",)
    assert r.widened == ("blocked XSAs",)


def test_the_last_resort_is_left_alone_while_a_clean_set_exists() -> None:
    port = RulePort(clean_if=[{"a"}], faithful_if=[{"x"}])
    r = find_minimal_set(port, [*stages(cands("a", "b")), last_resort("x")], xsa=7, fix=FIX)
    assert chosen(r) == ("a",) and not r.faithful and r.waits_for == ()
    assert r.widened == () and all("x" not in call for call in port.calls)


def test_blocked_xsa_commits_fit_past_the_candidates_bound() -> None:
    port = RulePort(clean_if=[{"x"}], faithful_if=[{"x"}])
    limits = Limits(max_candidates=2)
    r = find_minimal_set(
        port, [*stages(cands("a", "b")), last_resort("x")], xsa=7, fix=FIX, limits=limits
    )
    assert r.waits_for == (5,) and chosen(r) == () and r.bound_hit is None


# -- the proof of a minimum, against brute force ------------------------------------------------


@dataclass
class PathPort:
    """Git's behaviour as the search models it: what a path ends up holding depends only on the
    picked commits that touch it. A pick fails at a path where a commit it needs (an earlier
    toucher) is missing; the fix is clean (faithful) at one of its paths when the picked
    touchers of that path are one of the sets listed as clean (faithful) there."""

    touches: dict[str, set[str]]  # candidate -> paths, in source order
    needs: dict[tuple[str, str], str]  # (candidate, path) -> the earlier toucher it needs
    clean_at: dict[str, list[frozenset[str]]]  # fix path -> touchers that make it clean
    faithful_at: dict[str, list[frozenset[str]]]

    def trial(self, prerequisites: Sequence[str]) -> Trial:
        picked: set[str] = set()
        for sha in prerequisites:
            bad = [
                p
                for p in sorted(self.touches[sha])
                if self.needs.get((sha, p), sha) not in picked | {sha}
            ]
            if bad:
                return Trial(False, False, tuple(bad), failed=sha)
            picked.add(sha)

        def at(path: str) -> frozenset[str]:
            return frozenset(c for c in picked if path in self.touches[c])

        unclean = tuple(p for p in sorted(self.clean_at) if at(p) not in self.clean_at[p])
        if unclean:
            return Trial(False, False, unclean)
        unfaithful = tuple(p for p in sorted(self.faithful_at) if at(p) not in self.faithful_at[p])
        return Trial(True, not unfaithful, unfaithful=unfaithful)


def random_path_port(rng: random.Random, names: str) -> PathPort:
    paths = ["p0", "p1", "p2", "p3"]
    touches = {n: set(rng.sample(paths, rng.randint(1, 2))) for n in names}
    needs = {}
    for i, n in enumerate(names):
        for p in touches[n]:
            earlier = [m for m in names[:i] if p in touches[m]]
            if earlier and rng.random() < 0.3:
                needs[(n, p)] = rng.choice(earlier)

    def families(path: str) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
        touchers = [n for n in names if path in touches[n]]
        subsets = [
            frozenset(c for c in touchers if rng.random() < 0.5) for _ in range(rng.randint(0, 3))
        ]
        clean = [frozenset(touchers), *subsets]  # the whole pool works, as `source` proves
        return clean, [frozenset(touchers), *(s for s in subsets if rng.random() < 0.5)]

    fix_paths = {p: families(p) for p in ("p0", "p1")}
    return PathPort(
        touches,
        needs,
        {p: f[0] for p, f in fix_paths.items()},
        {p: f[1] for p, f in fix_paths.items()},
    )


def test_the_proven_minimum_is_the_brute_force_minimum() -> None:
    rng = random.Random(4)
    names = "abcdefgh"
    tried = 0
    for _ in range(300):
        port = random_path_port(rng, names)
        if port.trial(()).clean or not port.trial(list(names)).faithful:
            continue  # the finder runs on a fix that conflicts, with `source` as a solution
        tried += 1
        working = [
            combo
            for k in range(len(names) + 1)
            for combo in itertools.combinations(names, k)
            if port.trial(combo).faithful
        ]
        pool = cands(*names, paths=port.touches)
        r = find_minimal_set(port, stages(pool), xsa=1, fix=FIX)
        assert r.found and r.faithful and r.minimal
        assert chosen(r) in working and len(chosen(r)) == len(working[0])
        # The branch and bound alone, bounded only by the whole pool (ddmin's set is often
        # the minimum already, which leaves the bound nothing to find).
        search = _Search(port, Limits(), time.monotonic, time.monotonic())
        for position, c in enumerate(pool):
            search.add(c, position)
        best, proven = search.smallest(list(names), list(names), "faithful")
        assert proven and tuple(best) in working and len(best) == len(working[0])
    assert tried > 100
