"""The JSON reports of `plan`, `reconcile`, `status` and `deps`: one model each, one dump.

Their shapes are a contract with users' scripts: README documents the keys (a test keeps that
text and these models equal), and `xsabot schema --report NAME` exports each as JSON Schema.
Keys come out in field order. A field named in `_omit_unset` is in the JSON only when it was
given: a plan's check says what it `skipped` and has no run counts; the pass of `reconcile`
has `proposals`, that of `plan` has none.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    computed_field,
    model_serializer,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from bot.core.outcome import XsaState
from bot.core.ports import MergeRequestState
from bot.core.prereqs import Candidate, FinderResult
from bot.core.proposals import Action as ProposalVerb
from bot.core.publish import Action
from bot.core.record import BuildRecord, NoteDocument, XsaRecord
from bot.manifest.schema import SCHEMA_DIALECT


class Report(BaseModel):
    """A report's JSON is `to_json()`: the one place reports become JSON."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", json_schema_serialization_defaults_required=True
    )
    _omit_unset: ClassVar[frozenset[str]] = frozenset()
    _last: ClassVar[tuple[str, ...]] = ()  # keys that follow the computed ones

    @model_serializer(mode="wrap")
    def _shape(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self._omit_unset - self.model_fields_set:
            data.pop(name, None)
        for name in self._last:
            if name in data:
                data[name] = data.pop(name)
        return data

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def json_keys(cls) -> list[str]:
        """Every key the JSON can have, in order."""
        keys = [n for n, f in cls.model_fields.items() if not f.exclude]
        keys += list(cls.model_computed_fields)
        return [k for k in keys if k not in cls._last] + [k for k in keys if k in cls._last]


# -- plan, reconcile, status ------------------------------------------------------------------


class BlockedXsa(Report):
    """`waits_for` only with reason `waits-for`: the XSAs, blocked too, that the fix needs."""

    _omit_unset: ClassVar[frozenset[str]] = frozenset({"waits_for"})
    xsa: int
    commit: str | None
    paths: tuple[str, ...]
    reason: str
    detail: str = ""  # e.g. the compiler's error lines for `does-not-build`
    waits_for: tuple[int, ...] = ()


class WouldWithdraw(Report):
    """An XSA the published tip holds that publishing the new build would take out, though
    the manifest still lists it and its changes are not in the base: the branch keeps its
    tip (action `kept`)."""

    xsa: int
    why: str  # what the new build says of it
    where: str  # the manifest's entry, `file:line`


class CheckRun(Report):
    """One check the gate ran: on which tree, how long, and whether incrementally (in the
    line's build directory moved from an earlier tree) or on a clean export (the first of a
    line, and the confirmation of every incremental failure)."""

    tree: str
    seconds: float
    incremental: bool
    passed: bool


class NotCompiled(Report):
    """An applied XSA's C files that the passing check did not compile: it proves nothing
    about them (add a command to the tree's `check` that builds them)."""

    xsa: int
    files: tuple[str, ...]


class CheckReport(Report):
    """The check gate's run on one branch; a plan runs none and says so in `skipped`."""

    _omit_unset: ClassVar[frozenset[str]] = frozenset(
        {"base_fails", "held_back", "checks_run", "seconds", "runs", "trees_checked", "skipped"}
    )
    command: str | None
    passed: bool | None  # None: not run
    base_fails: bool = False
    held_back: tuple[int, ...] = ()
    checks_run: int = 0
    seconds: float = 0.0  # the time the checks run took, together
    runs: tuple[CheckRun, ...] = ()  # each check run, in order
    trees_checked: tuple[str, ...] = ()
    skipped: str | None = None

    def __getitem__(self, key: str) -> Any:
        """A field as the JSON has it (`check["held_back"]` is a list)."""
        return self.to_json()[key]


class BranchReport(Report):
    """What a pass did (or would do) to one manifest's branch."""

    manifest: str
    branch: str | None = None
    base: str | None = None
    tip: str | None = None  # the published tip after the pass (planned, for `plan`)
    action: Action
    applied: tuple[int, ...] = ()
    already_applied: tuple[int, ...] = ()
    blocked: tuple[BlockedXsa, ...] = ()
    not_applied: tuple[int, ...] = ()  # declared blocked or not-affected in the manifest
    not_compiled: tuple[NotCompiled, ...] = ()  # applied, but the passing check skipped these
    would_withdraw: tuple[WouldWithdraw, ...] = ()  # why the branch is kept (action `kept`)
    build: str | None = None  # what `xsabot build` gives for this manifest
    previous: str | None = None  # the published tip before the pass
    changes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    rebuilt: bool = False
    published: bool = False
    check: CheckReport | None = None  # the check gate's run, when the tree has a check
    path: str

    @property
    def ok(self) -> bool:
        return (
            self.action not in ("error", "kept")
            and not self.blocked
            and not self.problems
            and not self.would_withdraw
        )


def from_record(record: BuildRecord) -> dict[str, Any]:
    """The report fields a build record answers without a rebuild."""
    return {
        "applied": tuple(record.states("applied")),
        "already_applied": tuple(record.states("already-applied")),
        "blocked": tuple(_blocked(x) for x in record.xsas if x.state == "blocked"),
        "not_applied": tuple(
            x.xsa for x in record.xsas if x.state in ("not-affected", "declared-blocked")
        ),
        "not_compiled": tuple(
            NotCompiled(xsa=x.xsa, files=x.not_compiled) for x in record.xsas if x.not_compiled
        ),
        "build": record.build,
        "base": record.base,
    }


def _blocked(x: XsaRecord) -> BlockedXsa:
    fields: dict[str, Any] = {"waits_for": x.waits_for} if x.waits_for else {}
    return BlockedXsa(
        xsa=x.xsa,
        commit=x.blocked_commit,
        paths=x.paths,
        reason=x.reason,
        detail=x.detail,
        **fields,
    )


class ProposalAction(Report):
    """One proposal after the pass: what was done to it and where it is."""

    action: ProposalVerb
    manifest: str
    xsa: int
    branch: str
    reason: str
    title: str | None = None
    draft: bool | None = None
    id: int | None = None
    url: str | None = None
    state: MergeRequestState | None = None  # the merge request's state afterwards
    error: str | None = None  # the forge refused; the other proposals still went ahead


class NotifyCounts(Report):
    """One notification channel in one pass: messages sent and failed (each failure is
    retried on a later pass), and how many still wait for it."""

    sent: int = 0
    failed: int = 0
    pending: int = 0


class NotificationsReport(Report):
    """A pass's notifications: the totals over the channels, then each channel's."""

    sent: int = 0
    failed: int = 0
    pending: int = 0
    channels: dict[str, NotifyCounts] = {}


class PassReport(Report):
    """A pass: `plan` and `reconcile`; only `reconcile` has `proposals` (maybe empty), and
    `notifications` (per channel) when the config has `notify:` channels."""

    _omit_unset: ClassVar[frozenset[str]] = frozenset(
        {"proposals", "search_checks", "notifications"}
    )
    _last: ClassVar[tuple[str, ...]] = ("proposals", "search_checks", "notifications")
    branches: tuple[BranchReport, ...] = ()
    errors: tuple[str, ...] = ()
    # A tree could not be reached at all (exit 2, not 1); in the JSON, its branches say why.
    environment_failed: bool = Field(default=False, exclude=True)
    proposals: tuple[ProposalAction, ...] = ()
    # The checks the proposal step ran: the build-aware searches' verification builds, and
    # the check of each branch with the sets found merged (a branch's `check` has the gate's).
    search_checks: tuple[CheckRun, ...] = ()
    notifications: NotificationsReport | None = None

    @property
    def exit_status(self) -> int:
        if self.environment_failed:
            return 2
        return 0 if all(b.ok for b in self.branches) and not self.errors else 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class OpenProposal(Report):
    """One of the bot's open merge requests, as `status` lists it."""

    id: int
    branch: str
    title: str
    draft: bool
    url: str


class StatusReport(Report):
    branches: tuple[BranchReport, ...]
    proposals: tuple[OpenProposal, ...]


# -- deps -------------------------------------------------------------------------------------


class ChosenCommit(Report):
    commit: str
    subject: str
    why: tuple[str, ...]
    before: str | None = None  # the XSA commit it goes right before; None: the first


class CandidateCommit(Report):
    commit: str
    subject: str
    reasons: tuple[str, ...]


class DepsReport(Report):
    """`deps MANIFEST XSA`: the XSA, then what the search found; an XSA that applies has
    only `found` and `chosen`, one blocked by something else than a conflict `found`,
    `reason` and `detail`."""

    _omit_unset: ClassVar[frozenset[str]] = frozenset(
        {
            "fix",
            "conflicts",
            "reason",
            "detail",
            "minimal",
            "faithful",
            "chosen",
            "candidates",
            "trials",
            "seconds",
            "bound_hit",
            "widened",
            "waits_for",
        }
    )
    manifest: str
    xsa: int
    state: XsaState
    fix: str = ""
    conflicts: tuple[str, ...] = ()
    found: bool
    reason: str = ""
    detail: str = ""
    minimal: bool = False
    faithful: bool = False
    chosen: tuple[ChosenCommit, ...] = ()
    candidates: tuple[CandidateCommit, ...] = ()
    trials: int = 0
    seconds: float = 0.0
    bound_hit: str | None = None  # "candidates", "trials", "seconds" or "proof-sets"
    widened: tuple[str, ...] = ()
    waits_for: tuple[int, ...] = ()


def chosen_why(c: Candidate, conflicts: tuple[str, ...]) -> list[str]:
    """The candidate's reasons, led by the conflicting paths it changes (the evidence a
    reviewer looks for first)."""
    hit = sorted(set(conflicts) & (c.paths or frozenset()))
    lead = [f"changes {', '.join(hit)}, where the fix conflicts"] if hit else []
    return lead + list(c.reasons)


def deps_finding(manifest: str, xsa: int, state: XsaState, r: FinderResult) -> DepsReport:
    return DepsReport(
        manifest=manifest,
        xsa=xsa,
        state=state,
        fix=r.fix,
        conflicts=r.conflicts,
        found=r.found,
        minimal=r.minimal,
        faithful=r.faithful,
        chosen=tuple(
            ChosenCommit(
                commit=c.sha,
                subject=c.subject,
                why=tuple(chosen_why(c, r.conflicts)),
                before=c.before,
            )
            for c in r.chosen
        ),
        candidates=tuple(
            CandidateCommit(commit=c.sha, subject=c.subject, reasons=c.reasons)
            for c in r.candidates
        ),
        trials=r.trials,
        seconds=round(r.seconds, 3),
        bound_hit=r.bound_hit,
        widened=r.widened,
        waits_for=r.waits_for,
    )


# -- JSON Schema ------------------------------------------------------------------------------

REPORTS: dict[str, tuple[type[BaseModel], str]] = {
    "plan": (PassReport, "`xsabot plan --json`: what a pass would do, per manifest"),
    "reconcile": (PassReport, "`xsabot reconcile --json`: what a pass did, and its proposals"),
    "status": (StatusReport, "`xsabot status --json`: published branches and open proposals"),
    "deps": (DepsReport, "`xsabot deps MANIFEST XSA --json`: the prerequisites an XSA needs"),
    "record": (
        NoteDocument,
        "a build record note (`refs/notes/xsabot` in the mirror) on a published tip",
    ),
}


class _ReportSchema(GenerateJsonSchema):
    """The schema of what a report's JSON holds: its fields (`Report._shape` only leaves some
    out or moves them), every key required but those left out when not given."""

    def ser_schema(
        self,
        schema: core_schema.SerSchema
        | core_schema.IncExSeqSerSchema
        | core_schema.IncExDictSerSchema,
    ) -> JsonSchemaValue | None:
        if schema["type"] == "function-wrap":
            return None
        return super().ser_schema(schema)

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        generated = super().model_schema(schema)
        omitted: frozenset[str] = getattr(schema["cls"], "_omit_unset", frozenset())
        if "required" in generated:
            generated["required"] = [n for n in generated["required"] if n not in omitted]
        return generated


def report_json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one report: `plan`, `reconcile`, `status`, `deps`
    or `record`."""
    model, description = REPORTS[name]
    generated = model.model_json_schema(mode="serialization", schema_generator=_ReportSchema)
    generated.pop("title", None)
    generated.pop("description", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:xsabot:report:{name}",
        "title": f"xsabot {name} report",
        "description": description,
        **generated,
    }
