"""What a build found, per XSA: the plain data the planner, reports and proposals work from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

XsaState = Literal["applied", "already-applied", "blocked", "not-affected", "declared-blocked"]
PickRole = Literal["prerequisite", "fix", "patch"]


@dataclass(frozen=True)
class Pick:
    """One source commit (or patch) picked onto the branch."""

    source: str  # source commit ID, or "patch:<sha256>" for an advisory patch
    commit: str  # the new commit on the branch
    role: PickRole
    empty: bool = False  # the change was already there


@dataclass(frozen=True)
class Blocked:
    """Why an XSA is not on the branch.

    `tree` and `head` are the branch before the XSA's first pick: where the prerequisite
    search starts (it tries prerequisites, then all of the XSA's commits, from there).
    """

    xsa: int
    commit: str | None  # the source commit that failed (None for a patch or a bad input)
    paths: tuple[str, ...]
    reason: str  # "conflict", "bad-source", "patch-does-not-apply", "sha256-mismatch", ...
    detail: str = ""
    tree: str | None = None
    head: str | None = None


@dataclass(frozen=True)
class XsaOutcome:
    xsa: int
    state: XsaState
    picks: tuple[Pick, ...] = ()
    blocked: Blocked | None = None


@dataclass(frozen=True)
class BuildResult:
    """A built branch: base, tip, and what happened to every XSA of the manifest."""

    base: str  # base tag name
    base_commit: str
    tip: str
    tree: str
    outcomes: tuple[XsaOutcome, ...] = field(default=())

    def xsas(self, state: XsaState) -> list[int]:
        return [o.xsa for o in self.outcomes if o.state == state]

    @property
    def blocked(self) -> list[Blocked]:
        return [o.blocked for o in self.outcomes if o.blocked is not None]
