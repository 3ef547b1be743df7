"""Prerequisites a fix needs to build, not only to apply.

A fix can merge cleanly and still fail the check: it uses a function, macro, type, member or
header that a non-XSA commit on `source` brought in. The compiler names what is missing
(`bot.core.compiler`); the commit that introduced a name is found with git's pickaxe over
(base, fix), first in the files the fix changes and the headers, then in the whole tree. Each
such commit may need its own prerequisites to apply: the apply-level finder
(`bot.git.prereqs`) supplies them. The set is then verified the expensive way, with the check
on the branch as the manifest would build it; if the check still fails and names something new
(the introduced code uses yet another new name), another round follows.

Checks cost minutes on real trees, so the search spends them only on verification (one per
round), never on minimising: the set is minimal by construction when it is one commit, and
otherwise the commits that introduce the missing names plus what they need to apply.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from bot.core.compiler import CompilerError, headers, identifiers, parse_errors
from bot.core.ports import Check, CheckVerdict
from bot.core.prereqs import DEFAULT_LIMITS, Candidate, FinderResult, Limits
from bot.errors import UsageError
from bot.git import Repository
from bot.git.objects import ObjectStore
from bot.git.pick import TreeMerger
from bot.git.pickaxe import commits_adding_file, commits_adding_identifier
from bot.git.prereqs import find_prerequisites
from bot.git.sourcelog import SourceCommit, source_log
from bot.git.trials import TreeTrials, commit_trees

WHOLE_TREE = "whole tree"


@dataclass(frozen=True)
class BuildLimits:
    max_rounds: int = 3  # rounds of "check fails, names something new"
    max_checks: int = 3  # verification checks (minutes each on Xen)
    apply: Limits = DEFAULT_LIMITS  # for each apply-level search


DEFAULT_BUILD_LIMITS = BuildLimits()


@dataclass(frozen=True)
class BuildFinderResult:
    """What the search found, as the apply-level finder reports it (`finder`, for the same
    merge request flow), plus the build evidence."""

    finder: FinderResult
    errors: tuple[CompilerError, ...]  # what the failing check reported missing
    checks: tuple[CheckVerdict, ...] = ()  # the verification checks, in order
    tree: str | None = None  # the tree that passed: the branch with the set and the XSA
    detail: str = ""  # why nothing was found

    @property
    def found(self) -> bool:
        return self.finder.found


def find_build_prerequisites(
    repo: Repository,
    store: ObjectStore,
    runner: Check,
    *,
    base_commit: str,
    fix: str,
    xsa: int,
    ours_tree: str,
    errors: str,
    on_branch: Collection[str] = (),
    xsa_commits: Sequence[str] = (),
    limits: BuildLimits = DEFAULT_BUILD_LIMITS,
    merger: TreeMerger | None = None,
    line: str | None = None,
) -> BuildFinderResult:
    """The source commits that make the XSA build on `ours_tree`, the branch before the XSA.

    `errors` is the failing check's output on the branch with the XSA; `on_branch` the source
    commits already picked; `xsa_commits` all of the XSA's commits, in order (default: `fix`);
    `line`: the branch whose build directory the verification checks move (a few commits
    from the trees the gate checked there), instead of a clean export each.
    """
    search = _Search(
        repo,
        store,
        runner,
        merger or TreeMerger(store),
        base=base_commit,
        fixes=list(xsa_commits) or [fix],
        ours_tree=ours_tree,
        on_branch=set(on_branch),
        limits=limits,
        line=line,
    )
    return search.run(xsa, fix, errors)


@dataclass
class _Search:
    repo: Repository
    store: ObjectStore
    runner: Check
    merger: TreeMerger
    base: str
    fixes: list[str]
    ours_tree: str
    on_branch: set[str]
    limits: BuildLimits
    line: str | None = None
    chain: list[SourceCommit] = field(default_factory=list)
    place: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    considered: dict[str, None] = field(default_factory=dict)  # pickaxe hits, in found order
    widened: list[str] = field(default_factory=list)
    checks: list[CheckVerdict] = field(default_factory=list)
    trials: int = 0

    def __post_init__(self) -> None:
        self.chain = source_log(self.repo).range(self.base, self.fixes[-1])
        self.place = {c.sha: i for i, c in enumerate(self.chain)}
        missing = [f for f in self.fixes if f not in self.place]
        if missing:
            raise UsageError(f"{missing[0]} is not on the source branch after the base")

    # -- the rounds ---------------------------------------------------------------------------

    def run(self, xsa: int, fix: str, output: str) -> BuildFinderResult:
        started = time.monotonic()
        first = parse_errors(output)
        seen: set[str] = set()
        needed: set[str] = set()
        chosen: list[str] = []
        detail, bound, tree = "", None, None
        for _round in range(self.limits.max_rounds):
            errors = parse_errors(output)
            names = [n for n in (*identifiers(errors), *headers(errors)) if n not in seen]
            if not names:
                detail = _still_failing(errors, seen)
                break
            seen.update(names)
            found = self._introducers(errors, names)
            if not found:
                detail = f"no commit between the base and the fix adds {_names(names)}"
                break
            needed.update(found)
            try:
                chosen = self._with_apply_prerequisites(needed, xsa)
                picked = self._pick_all([*chosen, *self.fixes])
            except _NoSet as exc:
                detail = str(exc)
                break
            if len(self.checks) >= self.limits.max_checks:
                bound, detail = "checks", "out of verification checks"
                break
            self.store.flush([picked])  # the check exports the tree with git
            result = self.runner.check(picked, line=self.line)
            self.checks.append(result)
            if result.passed:
                tree = picked
                break
            if result.status == "timeout":
                detail = "the check timed out with the prerequisites"
                break
            output = result.output()
        else:
            bound, detail = "rounds", "the check still fails after every round"
        return self._result(xsa, fix, first, chosen if tree else [], tree, detail, bound, started)

    def _result(
        self,
        xsa: int,
        fix: str,
        errors: tuple[CompilerError, ...],
        chosen: list[str],
        tree: str | None,
        detail: str,
        bound: str | None,
        started: float,
    ) -> BuildFinderResult:
        found = tree is not None
        faithful = False
        if found:
            trial = TreeTrials(self.store, self.merger, self.ours_tree, self.fixes)
            faithful = trial.trial(chosen).faithful
            self.trials += 1
        shown = [*self.considered, *(s for s in self.reasons if s not in self.considered)]
        finder = FinderResult(
            xsa=xsa,
            fix=fix,
            conflicts=tuple(sorted({e.file for e in errors if e.file})),
            candidates=tuple(self._candidate(s) for s in self._ordered(shown)),
            chosen=tuple(self._candidate(s) for s in chosen),
            found=found,
            minimal=found and len(chosen) == 1,  # the empty set failed the check
            faithful=faithful,
            trials=self.trials,
            seconds=time.monotonic() - started,
            bound_hit=bound,
            widened=tuple(self.widened),
        )
        return BuildFinderResult(finder, errors, tuple(self.checks), tree, "" if found else detail)

    # -- which commits add the missing names ---------------------------------------------------

    def _introducers(self, errors: tuple[CompilerError, ...], names: list[str]) -> set[str]:
        """Per missing name, the last eligible commit before the fix that adds it."""
        fix_paths = sorted(set().union(*(self._commit(f).paths for f in self.fixes)))
        tip = self.fixes[-1]
        out: set[str] = set()
        for name in names:
            where = next((e for e in errors if e.identifier == name), None)
            place = f"{where.file}:{where.line}" if where and where.line else where and where.file
            said = f" ({where.kind} at {place})" if where and where.file else ""
            is_header = where is not None and where.kind == "missing-header"
            found = None
            for paths in ([*fix_paths, "*.h"], None):
                if is_header:
                    hits = commits_adding_file(self.repo, name, self.base, tip)
                else:
                    hits = commits_adding_identifier(self.repo, name, self.base, tip, paths)
                eligible = [s for s in hits if self._eligible(s)]
                self.considered.update(dict.fromkeys(eligible))
                if eligible:
                    found = max(eligible, key=self.place.__getitem__)
                    break
                if is_header:
                    break  # the header search looks at the whole tree already
                if WHOLE_TREE not in self.widened:
                    self.widened.append(WHOLE_TREE)
            if found is not None:
                self._note(found, f"adds `{name}`, which the build reports missing{said}")
                out.add(found)
        return out

    def _eligible(self, sha: str) -> bool:
        c = self._commit(sha)
        return (
            sha in self.place
            and self.place[sha] < self.place[self.fixes[-1]]
            and sha not in self.fixes
            and sha not in self.on_branch
            and not c.xsas
            and c.parent is not None
        )

    # -- what they need to apply, and the trial -------------------------------------------------

    def _with_apply_prerequisites(self, needed: Iterable[str], xsa: int) -> list[str]:
        """`needed` plus the commits each needs to apply, in source order."""
        included: list[str] = []
        tree = self.ours_tree
        for sha in self._ordered(needed):
            if sha in included:
                continue
            found = find_prerequisites(
                self.repo,
                self.store,
                base_commit=self.base,
                fix=sha,
                xsa=xsa,
                ours_tree=tree,
                on_branch=(*self.on_branch, *included),
                limits=self.limits.apply,
                merger=self.merger,
            )
            self.trials += found.trials
            if not found.found:
                raise _NoSet(f"{sha} adds a missing name but no prerequisite set makes it apply")
            for c in found.chosen:
                self._note(c.sha, f"needed for {sha[:12]} to apply")
            new = [c.sha for c in found.chosen if c.sha not in included] + [sha]
            tree = self._pick_all(new, tree)
            included += new
        return self._ordered(included)

    def _pick_all(self, shas: Sequence[str], tree: str | None = None) -> str:
        """The tree after picking `shas` in order onto `tree` (default: the branch before the
        XSA)."""
        tree = tree or self.ours_tree
        for sha in shas:
            base, theirs = commit_trees(self.repo, sha)
            self.trials += 1
            merge = self.merger.merge(base, tree, theirs)
            if merge.tree is None:
                paths = ", ".join(merge.conflicts)
                raise _NoSet(f"with the prerequisites picked, {sha} conflicts in {paths}")
            tree = merge.tree
        return tree

    # -- helpers ------------------------------------------------------------------------------

    def _commit(self, sha: str) -> SourceCommit:
        return source_log(self.repo).get(sha)

    def _ordered(self, shas: Iterable[str]) -> list[str]:
        return sorted(set(shas), key=self.place.__getitem__)

    def _note(self, sha: str, reason: str) -> None:
        reasons = self.reasons.setdefault(sha, [])
        if reason not in reasons:
            reasons.append(reason)

    def _candidate(self, sha: str) -> Candidate:
        c = self._commit(sha)
        return Candidate(sha, c.subject, tuple(self.reasons.get(sha, ())), c.paths)


class _NoSet(Exception):
    """The search cannot go on; the message says why, for the report."""


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _still_failing(errors: tuple[CompilerError, ...], seen: set[str]) -> str:
    if not errors:
        return "the check fails without naming a missing identifier or header"
    return f"the check still reports {_names(sorted({e.identifier for e in errors} & seen))}"
