"""The prerequisite searches of a pass: what each blocked XSA of a freshly built manifest needs.

They run on every fresh build (`plan` and `reconcile` alike), so the reports and the build
record say why an XSA is blocked: it `waits-for` other XSAs blocked on the branch, or no set
exists, or the search stopped at a bound. `reconcile` then makes its proposals from the same
searches (`bot/app/proposals.py`), adding the check's for the XSAs the gate held back.

The XSAs are searched in manifest order, each as if the sets found before it were merged (a
hypothetical build, in memory, of the manifest with those sets placed as the proposals place
them): two proposals never add the same commit, and what one pass proposes is what the next
pass, after the merges, would find. An XSA that applies once the sets before it are merged
waits for those XSAs (the fewest that do it) and gets no proposal of its own.

With the check (`reconcile`'s proposal step), the XSAs the gate held back are searched too,
and then the build with every set found merged is checked as the next pass would check it
(`Regate`): an XSA that applies only once a held-back XSA's set is merged and then breaks the
build gets a build search of its own, assuming those sets, and so on until the check passes.
Every proposal the gate needs comes out of one pass, and the pass after the merges finds its
checks' verdicts cached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.core.outcome import DOES_NOT_BUILD, PARTIAL, Blocked, BuildResult, XsaOutcome
from bot.core.ports import NoProgress, Progress
from bot.core.prereqs import DEFAULT_LIMITS, FinderResult, Limits
from bot.core.proposals import explain_blocked
from bot.errors import XsabotError
from bot.git.build import Builder
from bot.git.objects import ObjectStore
from bot.git.workrepo import WorkRepo
from bot.manifest.model import Manifest, Prerequisite

log = logging.getLogger(__name__)
SEARCHED = ("conflict", PARTIAL)  # reasons the apply-level search can help with
# The check's own search, for an XSA the gate held back: (XSA, why, its picks in order, the
# source commits on the branch before it) in, its result out; None when it cannot search.
BuildSearch = Callable[[int, Blocked, Sequence[str], Sequence[str]], FinderResult | None]
# The check gate again over a hypothetical build (the manifest with the sets found merged,
# the XSAs given left out as held back): the gated result, where each XSA the check now holds
# back is blocked `does-not-build` with the compiler's words.
Regate = Callable[[Manifest, Mapping[int, Blocked]], BuildResult]
_Assumed = dict[int, tuple[Prerequisite, ...]]


@dataclass
class Searched:
    """What one manifest's searches found, by XSA."""

    found: dict[int, FinderResult] = field(default_factory=dict)
    waits: dict[int, tuple[int, ...]] = field(default_factory=dict)  # the XSAs each waits for
    # XSAs that apply once the sets are merged and then break the check (`Regate`): blocked
    # as the check says, and searched for what makes them build.
    blocks: dict[int, Blocked] = field(default_factory=dict)
    # Searches already made, by XSA and the sets assumed merged: `reconcile` searches again
    # with the check's sets too, and reuses every search whose assumptions did not change.
    memo: dict[tuple[int, tuple[tuple[int, tuple[Prerequisite, ...]], ...]], FinderResult] = field(
        default_factory=dict
    )


@dataclass
class Searcher:
    """What the searches use from a tree's pass."""

    work: WorkRepo
    store: ObjectStore
    builder: Builder
    manifests_root: Path
    limits: Limits = DEFAULT_LIMITS
    progress: Progress = field(default_factory=NoProgress)

    def search(
        self,
        name: str,
        manifest: Manifest,
        result: BuildResult,
        *,
        build_search: BuildSearch | None = None,
        regate: Regate | None = None,
        previous: Searched | None = None,
    ) -> Searched:
        """Search every blocked XSA of `result` that a set of commits may unblock: a conflict
        (or a partial pick) by trial picks; one the check held back only with `build_search`,
        and with `regate` too, every XSA the check holds back once those sets are merged."""
        run = _Run(self, name, manifest, result, build_search)
        out = Searched(memo=dict(previous.memo) if previous else {})
        assumed: _Assumed = {}
        searchable = [o for o in result.outcomes if _searchable(o, gate=build_search is not None)]
        for n, o in enumerate(searchable, 1):
            current = run.build(assumed, stop_at=o.xsa)
            now = current.outcome(o.xsa)
            if now is None or now.blocked is None:
                # It applies once the sets before it are merged: it waits for their XSAs.
                out.waits[o.xsa] = run.needed(o.xsa, assumed)
                continue
            if not _searchable(now, gate=build_search is not None):
                continue
            key = (o.xsa, _key(assumed))
            finder = out.memo.get(key)
            if finder is None:
                step = f"finding what {name} XSA-{o.xsa} needs"
                with self.progress.step(step, of=(n, len(searchable))):
                    try:
                        finder = run.find(now, current, assumed)
                    except XsabotError as exc:
                        # What it needs stays unknown; the branch is still built and published.
                        log.warning("%s XSA-%d: no prerequisite search: %s", name, o.xsa, exc)
                        finder = None
                if finder is None:
                    continue
                out.memo[key] = finder
            out.found[o.xsa] = finder
            _take(out, o.xsa, finder, assumed)
        if regate is not None and build_search is not None:
            run.regate(out, assumed, regate)
        return out


def _take(out: Searched, xsa: int, finder: FinderResult, assumed: _Assumed) -> None:
    """Note what `xsa`'s search found: what it waits for, or its set, assumed merged from
    now on."""
    out.found[xsa] = finder
    if finder.waits_for:
        out.waits[xsa] = finder.waits_for
    elif finder.found and finder.chosen:
        assumed[xsa] = tuple(
            Prerequisite(commit=c.sha, why=c.subject, before=c.before) for c in finder.chosen
        )


def explained(result: BuildResult, searched: Searched) -> BuildResult:
    """`result` as the reports and the build record show it (`explain_blocked`)."""
    if searched.blocks:
        result = replace(
            result,
            outcomes=tuple(
                replace(o, blocked=searched.blocks[o.xsa]) if o.xsa in searched.blocks else o
                for o in result.outcomes
            ),
        )
    return explain_blocked(result, searched.found, searched.waits)


def _searchable(o: XsaOutcome, *, gate: bool) -> bool:
    b = o.blocked
    if b is None or b.tree_id is None:
        return False
    if b.reason == DOES_NOT_BUILD:
        return gate
    return b.reason in SEARCHED and b.commit is not None


def _key(assumed: _Assumed) -> tuple[tuple[int, tuple[Prerequisite, ...]], ...]:
    return tuple(sorted(assumed.items()))


@dataclass
class _Run:
    searcher: Searcher
    name: str
    manifest: Manifest
    result: BuildResult
    build_search: BuildSearch | None
    builds: dict[tuple[object, ...], BuildResult] = field(default_factory=dict)

    def build(self, assumed: _Assumed, stop_at: int | None = None) -> BuildResult:
        """The build with the sets in `assumed` merged, up to `stop_at` (the pass's own build
        when none is assumed)."""
        if not assumed:
            return self.result
        key = (_key(assumed), stop_at)
        found = self.builds.get(key)
        if found is None:
            # The XSAs the gate held back stay out, unless a set is assumed for them.
            held = {
                o.xsa: o.blocked
                for o in self.result.outcomes
                if o.blocked is not None
                and o.blocked.reason == DOES_NOT_BUILD
                and o.xsa not in assumed
            }
            found = self.builds[key] = self.searcher.builder.build(
                self.manifest.with_prerequisites(assumed),
                manifests_root=self.searcher.manifests_root,
                base_commit=self.result.base_commit,
                source_commit=self.result.source_commit,
                stop_at=stop_at,
                leave_out=held,
            )
        return found

    def regate(self, out: Searched, assumed: _Assumed, regate: Regate) -> None:
        """Check the build with every set found merged, as the pass after the merges will,
        and search each blocked XSA the check holds back there (one that applies only with
        those sets), assuming them; again with each new set, until the check passes or no
        new set is found. An XSA applied in this pass's build that breaks only with the sets
        is left to the next pass's gate (it is published now, and held back there)."""
        blocked = {o.xsa for o in self.result.outcomes if o.blocked is not None}
        held_by_gate = {
            o.xsa: o.blocked
            for o in self.result.outcomes
            if o.blocked is not None and o.blocked.reason == DOES_NOT_BUILD
        }
        while assumed.keys() & held_by_gate.keys():
            held = {x: b for x, b in (held_by_gate | out.blocks).items() if x not in assumed}
            try:
                gated = regate(self.manifest.with_prerequisites(assumed), held)
            except XsabotError as exc:  # no verdict: the next pass's gate checks it
                log.warning("%s: the build with the sets found was not checked: %s", self.name, exc)
                return
            new = [
                o
                for o in gated.outcomes
                if o.blocked is not None
                and o.blocked.reason == DOES_NOT_BUILD
                and o.xsa not in held
                and o.xsa not in out.blocks
                and o.xsa not in assumed  # its own set is found: what more it needs, next pass
            ]
            grew = False
            for o in new:
                assert o.blocked is not None
                if o.xsa not in blocked:
                    log.warning(
                        "%s XSA-%d: applied now, breaks the check once the sets found are merged",
                        self.name,
                        o.xsa,
                    )
                    continue
                out.blocks[o.xsa] = o.blocked
                out.waits.pop(o.xsa, None)
                key = (o.xsa, _key(assumed))
                finder = out.memo.get(key)
                if finder is None:
                    try:
                        finder = self.find(o, gated, assumed)
                    except XsabotError as exc:
                        log.warning("%s XSA-%d: no build search: %s", self.name, o.xsa, exc)
                        finder = None
                    if finder is None:
                        continue
                    out.memo[key] = finder
                had = len(assumed)
                _take(out, o.xsa, finder, assumed)
                grew = grew or len(assumed) > had
            if not grew:
                return

    def needed(self, xsa: int, assumed: _Assumed) -> tuple[int, ...]:
        """The fewest of the XSAs in `assumed` whose sets, merged, make `xsa` apply: each is
        left out in turn, and stays out when `xsa` applies without it."""
        kept = dict(assumed)
        for other in sorted(assumed, reverse=True):
            fewer = {x: s for x, s in kept.items() if x != other}
            outcome = self.build(fewer, stop_at=xsa).outcome(xsa) if fewer else None
            if outcome is not None and outcome.blocked is None:
                kept = fewer
        return tuple(sorted(kept))

    def find(
        self, outcome: XsaOutcome, current: BuildResult, assumed: _Assumed
    ) -> FinderResult | None:
        from bot.git.prereqs import find_prerequisites

        b = outcome.blocked
        assert b is not None and b.tree_id is not None
        manifest = self.manifest.with_prerequisites(assumed) if assumed else self.manifest
        entry = next(e for e in manifest.xsas if e.xsa == outcome.xsa)
        picks = [sha for sha, _ in entry.picks()]
        on_branch = current.picked_before(outcome.xsa)
        if b.reason == DOES_NOT_BUILD:
            assert self.build_search is not None
            finder = self.build_search(outcome.xsa, b, picks, on_branch)
        else:
            assert b.commit is not None
            finder = find_prerequisites(
                self.searcher.work.repo,
                self.searcher.store,
                base_commit=self.result.base_commit,
                fix=b.commit,
                xsa=outcome.xsa,
                ours_tree=b.tree_id,
                on_branch=on_branch,
                limits=self.searcher.limits,
                xsa_commits=picks,
                # XSAs not on the branch: the finder's last resort, so an XSA that needs one
                # of them waits for it instead of being proposed as blocked.
                blocked_xsas=_not_on_branch(manifest, current, outcome.xsa),
                fix_commits=entry.commits,
            )
        if finder is None or not assumed:
            return finder
        return replace(finder, assumes=tuple(sorted(assumed)))


def _not_on_branch(
    manifest: Manifest, built: BuildResult, xsa: int
) -> Mapping[int, tuple[str, ...]]:
    """The commits of the XSAs before `xsa` that the build left off the branch: the ones it
    may wait for (an XSA after it in the manifest is applied after it anyway)."""
    out: dict[int, tuple[str, ...]] = {}
    for entry in manifest.xsas:
        if entry.xsa == xsa:
            break
        o = built.outcome(entry.xsa)
        if entry.commits and o is not None and o.state in ("blocked", "declared-blocked"):
            out[entry.xsa] = entry.commits
    return out
