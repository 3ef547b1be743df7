"""What a pass did (or would do) per manifest: the data behind `plan`, `reconcile`, `status`.

The JSON shape is a contract with users' scripts: `manifest`, `branch`, `base`, `tip`,
`action`, `applied`, `already_applied`, `blocked` (each `xsa`, `commit`, `paths`), plus
the fields after them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.core.publish import Action
from bot.core.record import BuildRecord


@dataclass(frozen=True)
class BlockedXsa:
    xsa: int
    commit: str | None
    paths: tuple[str, ...]
    reason: str
    detail: str = ""  # e.g. the compiler's error lines for `does-not-build`

    def to_json(self) -> dict[str, Any]:
        return {
            "xsa": self.xsa,
            "commit": self.commit,
            "paths": list(self.paths),
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class BranchReport:
    manifest: str
    path: str
    action: Action
    branch: str | None = None
    base: str | None = None
    tip: str | None = None  # the published tip after the pass (planned, for `plan`)
    build: str | None = None  # what `xsabot build` gives for this manifest
    previous: str | None = None  # the published tip before the pass
    applied: tuple[int, ...] = ()
    already_applied: tuple[int, ...] = ()
    blocked: tuple[BlockedXsa, ...] = ()
    not_applied: tuple[int, ...] = ()  # declared blocked or not-affected in the manifest
    changes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    rebuilt: bool = False
    published: bool = False
    check: dict[str, Any] | None = None  # the check gate's run, when the tree has a check

    @property
    def ok(self) -> bool:
        return self.action != "error" and not self.blocked and not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "branch": self.branch,
            "base": self.base,
            "tip": self.tip,
            "action": self.action,
            "applied": list(self.applied),
            "already_applied": list(self.already_applied),
            "blocked": [b.to_json() for b in self.blocked],
            "not_applied": list(self.not_applied),
            "build": self.build,
            "previous": self.previous,
            "changes": list(self.changes),
            "problems": list(self.problems),
            "rebuilt": self.rebuilt,
            "published": self.published,
            "check": self.check,
            "path": self.path,
        }


def from_record(record: BuildRecord) -> dict[str, Any]:
    """The report fields a build record answers without a rebuild."""
    return {
        "applied": tuple(record.states("applied")),
        "already_applied": tuple(record.states("already-applied")),
        "blocked": tuple(
            BlockedXsa(x.xsa, x.blocked_commit, x.paths, x.reason, x.detail)
            for x in record.xsas
            if x.state == "blocked"
        ),
        "not_applied": tuple(
            x.xsa for x in record.xsas if x.state in ("not-affected", "declared-blocked")
        ),
        "build": record.build,
        "base": record.base,
    }


@dataclass(frozen=True)
class PassReport:
    branches: tuple[BranchReport, ...] = ()
    errors: tuple[str, ...] = field(default=())
    environment_failed: bool = False  # a tree could not be reached at all (exit 2, not 1)

    @property
    def exit_status(self) -> int:
        if self.environment_failed:
            return 2
        return 0 if all(b.ok for b in self.branches) and not self.errors else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "branches": [b.to_json() for b in self.branches],
            "errors": list(self.errors),
            "ok": self.exit_status == 0,
        }
