"""Prerequisites of a blocked fix: candidates from the source branch, searched by trial picks.

Candidates are the commits on `source` between the base and the fix, minus XSA fix commits,
commits already on the branch (by ID, by patch-id, or because their change is there already)
and merges. They come in widening stages, each the whole pool so far:
  narrow  commits changing the fix's files, and the commits that wrote the lines the fix
          removes or keeps as context, then the lines those need in turn (a bounded blame);
  files   commits changing any file a narrow candidate changes;
  range   every commit between the base and the fix: the source branch itself proves this
          pool works, so no fix on `source` stays blocked for lack of search;
  blocked XSAs  only when nothing else works: the range plus the commits of the manifest's
          XSAs that are blocked on the branch. A set found so says which XSAs the fix waits
          for (an XSA is never passed off as another's prerequisite).
The search itself (which set, how small, how faithful) is `bot.core.prereqs`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import pygit2

from bot.core.prereqs import (
    DEFAULT_LIMITS,
    Candidate,
    FinderResult,
    Limits,
    Stage,
    find_minimal_set,
)
from bot.errors import UsageError
from bot.git.blame import SourceFiles, line_origins, spans
from bot.git.objects import ObjectStore
from bot.git.pick import TreeMerger
from bot.git.sourcelog import SourceCommit, SourceLog, shared, source_log
from bot.git.trials import TreeReader, TreeTrials, tree_reader

BLAME_DEPTH = 3  # the lines a candidate relies on, and theirs, and theirs
_FILES: dict[str, SourceFiles] = {}


def source_files(repo: pygit2.Repository) -> SourceFiles:
    """The shared file cache of a repository."""
    return shared(_FILES, repo, SourceFiles)


class _Pool:
    """The commits a fix may need and why, grown stage by stage."""

    def __init__(
        self,
        repo: pygit2.Repository,
        log: SourceLog,
        files: SourceFiles,
        chain: list[SourceCommit],
        fixes: list[SourceCommit],
        ours_tree: str,
        reader: TreeReader,
        on_branch: Collection[str],
        blocked: Mapping[str, int],
        placed: Mapping[str, str] | None = None,
    ) -> None:
        self.repo, self.log, self.files, self.reader = repo, log, files, reader
        self.chain = chain  # (base, last fix], oldest first
        self.place = {c.sha: i for i, c in enumerate(chain)}
        self.fixes = fixes
        self.ours_tree = ours_tree
        self.on_branch = set(on_branch)
        self.blocked = blocked  # commit -> the blocked XSA it belongs to
        self.placed = placed or {}  # commit -> the XSA commit it goes right before
        self.reasons: dict[str, list[str]] = {}
        self.lines: dict[str, dict[tuple[str, str], set[int]]] = {}
        self._eligible: dict[str, bool] = {}
        self._branch_ids: dict[frozenset[str], list[SourceCommit]] | None = None
        last = self.place[fixes[-1].sha]
        self.before = [c for c in chain[:last] if c.sha not in {f.sha for f in fixes}]

    # -- which commits may be prerequisites ---------------------------------------------------

    def eligible(self, c: SourceCommit) -> bool:
        # A blocked XSA's commit is an XSA commit even if its message does not say so: the
        # manifest lists it as one, and it may only come in through the last stage.
        return not c.xsas and c.sha not in self.blocked and self._missing(c)

    def _missing(self, c: SourceCommit) -> bool:
        """A single-parent commit whose change is not on the branch in any form."""
        found = self._eligible.get(c.sha)
        if found is None:
            found = self._eligible[c.sha] = (
                c.parent is not None
                and c.sha not in self.on_branch
                and not self._already_there(c)
                and not self._same_patch_on_branch(c)
            )
        return found

    def _already_there(self, c: SourceCommit) -> bool:
        """Its change is on the branch already (as in a base cut with it, or an equivalent
        pick): every path it changes already holds its result."""
        return all(
            self.reader.blob_id(self.ours_tree, p) == self.files.blob_id(c.sha, p) for p in c.paths
        )

    def _same_patch_on_branch(self, c: SourceCommit) -> bool:
        # Only a commit changing exactly the same paths can have the same patch-id.
        if self._branch_ids is None:
            self._branch_ids = {}
            for sha in self.on_branch:
                picked = self.log.commits.get(sha)
                if picked is not None and picked.parent is not None:
                    self._branch_ids.setdefault(picked.paths, []).append(picked)
        same_paths = self._branch_ids.get(c.paths, [])
        return any(self.files.patch_id(p) == self.files.patch_id(c) for p in same_paths)

    def note(self, sha: str, reason: str) -> None:
        reasons = self.reasons.setdefault(sha, [])
        if reason not in reasons:
            reasons.append(reason)

    def note_lines(self, sha: str, path: str, lines: list[int], needer: SourceCommit) -> None:
        """Blame findings are gathered per (needer, path) so each reads as one reason."""
        self.reasons.setdefault(sha, [])
        self.lines.setdefault(sha, {}).setdefault((needer.sha, path), set()).update(lines)

    def _who(self, needer: str) -> str:
        if needer not in {f.sha for f in self.fixes}:
            return needer[:12]
        return "the fix" if len(self.fixes) == 1 else f"fix {needer[:12]}"

    def candidates(self) -> list[Candidate]:
        out = []
        for c in self.before:
            if c.sha not in self.reasons:
                continue
            blamed = [
                f"wrote {_lines(lines)} of {path}, which {self._who(needer)} relies on"
                for (needer, path), lines in self.lines.get(c.sha, {}).items()
            ]
            out.append(
                Candidate(
                    c.sha,
                    c.subject,
                    (*self.reasons[c.sha], *blamed),
                    c.paths,
                    self.blocked.get(c.sha),
                    self.placed.get(c.sha),
                )
            )
        return out

    # -- stages -------------------------------------------------------------------------------

    def narrow(self) -> list[Candidate]:
        fix_paths = frozenset().union(*(f.paths for f in self.fixes))
        for c in self.before:
            shared = sorted(c.paths & fix_paths)
            if shared and self.eligible(c):
                self.note(c.sha, f"changes {_few(shared)}, which the fix changes")
        queue = [(f, 0) for f in self.fixes]
        seen = {f.sha for f in self.fixes}
        while queue:
            needer, depth = queue.pop(0)
            for sha, path, lines in self._origins(needer):
                c = self.log.commits[sha]
                if not self.eligible(c):
                    continue
                self.note_lines(sha, path, lines, needer)
                if sha not in seen and depth + 1 < BLAME_DEPTH:
                    seen.add(sha)
                    queue.append((c, depth + 1))
        return self.candidates()

    def _origins(self, needer: SourceCommit) -> list[tuple[str, str, list[int]]]:
        """(commit, path, lines) of the range that wrote the lines `needer` removes or keeps
        as context."""
        if needer.parent is None or needer.sha not in self.place:
            return []
        older = self.chain[: self.place[needer.sha]]
        out = []
        for path in sorted(needer.paths):
            lines = self.files.relied_on(needer, path)
            if lines:
                for sha, found in line_origins(self.files, older, path, lines).items():
                    out.append((sha, path, found))
        return out

    def files_stage(self) -> list[Candidate]:
        touched: dict[str, str] = {}
        for sha in list(self.reasons):
            for p in self.log.commits[sha].paths:
                touched.setdefault(p, sha)
        for c in self.before:
            shared = sorted(p for p in c.paths if p in touched)
            if shared and self.eligible(c):
                near = touched[shared[0]][:12]
                self.note(c.sha, f"changes {_few(shared)}, which candidate {near} changes")
        return self.candidates()

    def range_stage(self) -> list[Candidate]:
        for c in self.before:
            if c.sha not in self.reasons and self.eligible(c):
                self.note(c.sha, "on source between the base and the fix")
        return self.candidates()

    def blocked_stage(self) -> list[Candidate]:
        for c in self.before:
            xsa = self.blocked.get(c.sha)
            if xsa is not None and self._missing(c):
                self.note(c.sha, f"a commit of XSA-{xsa}, which is blocked on this branch")
        return self.candidates()


def _lines(numbers: set[int]) -> str:
    return ("lines " if len(numbers) > 1 else "line ") + spans(sorted(numbers))


def _few(paths: Sequence[str]) -> str:
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def find_prerequisites(
    repo: pygit2.Repository,
    store: ObjectStore,
    *,
    base_commit: str,
    fix: str,
    xsa: int,
    ours_tree: str,
    on_branch: Collection[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    xsa_commits: Sequence[str] = (),
    merger: TreeMerger | None = None,
    blocked_xsas: Mapping[int, Sequence[str]] | None = None,
    fix_commits: Sequence[str] = (),
) -> FinderResult:
    """The smallest set of source commits that makes `fix` apply on `ours_tree`.

    `ours_tree` is the branch tree the failing pick met; `on_branch` the source commits already
    picked onto the branch. With `xsa_commits` (all of the XSA's picks, in the order the
    manifest applies them), the trials pick every one of them with the prerequisites, as a
    manifest applies them, and `ours_tree` is the branch tree before the XSA's first pick.

    `fix_commits` (the XSA's own commits, its `commits`) places the set: each candidate goes
    right before the first of them that follows it on source (`Candidate.before`), as on
    source, so a prerequisite that needs the XSA's first commit comes after it. Without them,
    the whole set goes before the XSA's first pick.

    `blocked_xsas`: the commits of the manifest's other XSAs that are not on the branch
    (blocked there), by XSA. Only when no set is found without them are they tried, and a set
    that needs them comes back with `waits_for` naming those XSAs.
    """
    log, files = source_log(repo), source_files(repo)
    fixes_ids = list(xsa_commits) or [fix]
    if fix not in fixes_ids:
        raise UsageError(f"{fix} is not one of the XSA's commits")
    chain = log.range(base_commit, fixes_ids[-1])
    by_id = {c.sha: c for c in chain}
    # Commits in the base already: the builder picks them as empty, and so do the trials.
    outside = [f for f in fixes_ids if f not in by_id and f != fix]
    in_base = {f for f in outside if _in_base(repo, base_commit, f)}
    if in_base:
        fixes_ids = [f for f in fixes_ids if f not in in_base]
        fix_commits = [f for f in fix_commits if f not in in_base]
        chain = log.range(base_commit, fixes_ids[-1])
        by_id = {c.sha: c for c in chain}
    missing = [f for f in (*fixes_ids, *fix_commits) if f not in by_id]
    if missing:
        raise UsageError(f"{missing[0]} is not on the source branch after the base")
    fixes = [by_id[f] for f in fixes_ids]
    merger = merger or TreeMerger(store)
    reader = tree_reader(store)
    blocked = {
        sha: number
        for number, commits in (blocked_xsas or {}).items()
        if number != xsa
        for sha in commits
        if sha not in fixes_ids
    }
    slots, placed = _placement(chain, fixes_ids, [f for f in fix_commits if f in fixes_ids])
    pool = _Pool(repo, log, files, chain, fixes, ours_tree, reader, on_branch, blocked, placed)
    port = TreeTrials(store, merger, ours_tree, fixes_ids, slots)
    stages = [
        Stage("narrow", pool.narrow),
        Stage("files", pool.files_stage),
        Stage("range", pool.range_stage),
    ]
    if blocked:
        stages.append(Stage("blocked XSAs", pool.blocked_stage, last_resort=True))
    return find_minimal_set(port, stages, xsa=xsa, fix=fix, limits=limits)


def _in_base(repo: pygit2.Repository, base: str, sha: str) -> bool:
    try:
        return sha == base or bool(repo.descendant_of(base, sha))
    except (KeyError, ValueError, pygit2.GitError):
        return False  # not in the repository: the range check below says so


def _placement(
    chain: Sequence[SourceCommit], picks: Sequence[str], fix_commits: Sequence[str]
) -> tuple[dict[str, int], dict[str, str]]:
    """Where each commit of `chain` goes among the XSA's `picks`: its index there (the slot
    `TreeTrials` puts it in), and the fix commit it goes right before when not the first.

    A commit goes after every fix commit that precedes it on source, and before the next one
    with the prerequisites listed for that one. Source order is what `source` proved works:
    there, each fix commit was applied after everything before it.
    """
    if not fix_commits:
        return {}, {}
    position = {c.sha: i for i, c in enumerate(chain)}
    # The fix commits in their order on source; each with the index its listed prerequisites
    # start at in `picks` (right after the previous fix commit).
    starts = [0] + [picks.index(f) + 1 for f in fix_commits[:-1]]
    at = sorted((position[f], k) for k, f in enumerate(fix_commits))
    slots: dict[str, int] = {}
    placed: dict[str, str] = {}
    for c in chain:
        passed = [k for p, k in at if p < position[c.sha]]
        k = min(max(passed, default=-1) + 1, len(fix_commits) - 1)
        slots[c.sha] = starts[k]
        if k:
            placed[c.sha] = fix_commits[k]
    return slots, placed
