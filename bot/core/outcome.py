"""What a build found, per XSA: the plain data the planner, reports and proposals work from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

XsaState = Literal["applied", "already-applied", "blocked", "not-affected", "declared-blocked"]
PickRole = Literal["prerequisite", "fix", "patch"]
DOES_NOT_BUILD = "does-not-build"  # a `Blocked.reason`: the XSA applies but fails the check
WAITS_FOR = "waits-for"  # a `Blocked.reason`: the fix needs XSAs blocked on the branch
# A `Blocked.reason`: a pick merged cleanly but does not remove and add the lines its source
# commit does (a hunk dropped, say); `paths` are where it differs, `detail` says how.
PARTIAL = "partial"


@dataclass(frozen=True)
class Pick:
    """One source commit (or patch) picked onto the branch."""

    source: str  # source commit ID, or "patch:<sha256>" for an advisory patch
    commit: str  # the new commit on the branch
    role: PickRole
    empty: bool = False  # the change was already there
    # Paths where the pick lands differently than on source, accepted in the manifest
    # (`partial:` on the XSA); a pick that differs without that blocks its XSA.
    partial: tuple[str, ...] = ()


@dataclass(frozen=True)
class Blocked:
    """Why an XSA is not on the branch.

    `tree_id` and `head` are the branch before the XSA's first pick: where the prerequisite
    search starts (it tries prerequisites, then all of the XSA's commits, from there).
    """

    xsa: int
    commit: str | None  # the source commit that failed (None for a patch or a bad input)
    paths: tuple[str, ...]
    reason: str  # "conflict", "partial", "waits-for", "bad-source", "patch-does-not-apply", ...
    detail: str = ""
    tree_id: str | None = None  # a git tree object's ID
    head: str | None = None
    waits_for: tuple[int, ...] = ()  # reason `waits-for`: the blocked XSAs the fix needs


@dataclass(frozen=True)
class XsaOutcome:
    xsa: int
    state: XsaState
    picks: tuple[Pick, ...] = ()
    blocked: Blocked | None = None
    # Applied, and the check passed, but it compiled none of these C files the XSA changes.
    not_compiled: tuple[str, ...] = ()

    @property
    def accepted_partial(self) -> tuple[str, ...]:
        """The source commits that landed differently than on source, as the manifest
        accepts."""
        return tuple(p.source for p in self.picks if p.partial)


@dataclass(frozen=True)
class BuildResult:
    """A built branch: base, tip, and what happened to every XSA of the manifest."""

    base: str  # base tag name
    base_commit: str
    tip: str
    tree_id: str  # the tip's git tree object
    outcomes: tuple[XsaOutcome, ...] = field(default=())
    source_commit: str = ""  # the source branch tip the build took its commits from

    def outcome(self, xsa: int) -> XsaOutcome | None:
        return next((o for o in self.outcomes if o.xsa == xsa), None)

    def picked_before(self, xsa: int) -> list[str]:
        """Source commits on the branch when `xsa` was tried: the picks of the XSAs before it
        that are on the branch (a blocked XSA's picks were rolled back).

        An already-applied XSA's picks count too: they were empty because their change is on
        the branch already. The prerequisite finder excludes these commits (by ID and by
        patch-id); left out, a prerequisite listed for an already-applied XSA would be offered
        again to a later one whenever the branch's file differs from the commit's.
        """
        picked: list[str] = []
        for o in self.outcomes:
            if o.xsa == xsa:
                break
            if o.state in ("applied", "already-applied"):
                picked += [p.source for p in o.picks if p.role != "patch"]
        return picked

    def xsas(self, state: XsaState) -> list[int]:
        return [o.xsa for o in self.outcomes if o.state == state]

    @property
    def blocked(self) -> list[Blocked]:
        return [o.blocked for o in self.outcomes if o.blocked is not None]
