"""The build record: what was published for a branch, and from which inputs.

It is stored as a git note (`refs/notes/xsabot`) on the published tip in the mirror, so any
machine (a fresh replica, a downstream) can tell what a tip holds and whether the manifest
changed since, without rebuilding: equal input digests mean nothing to do.

A note that cannot be read (not JSON, another format, a record with a field missing or
extra) is never taken for a missing one: readers get an `UnreadableRecord` that says why,
so a pass rebuilds and says so, and `status` reports it (it may be a note edited by hand).

A note reads first as a short summary for people (`git log --notes=xsabot`: per branch the
base, the XSAs held, those blocked and why, the manifest), then, from its first line that
starts with `{`, the JSON the bot reads back. Notes written before the summary existed are
the JSON alone, and read the same.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from bot.core.outcome import BuildResult
from bot.manifest.model import Manifest

FORMAT = 2  # 2: a note holds records by branch


def inputs_digest(
    manifest: Manifest,
    *,
    base_commit: str,
    committer: tuple[str, str],
    bot_version: str,
    check: str | None = None,
) -> str:
    """Everything a build's commits depend on, and nothing else (`why` texts do not count)."""
    xsas: list[dict[str, object]] = []
    for x in manifest.xsas:
        entry: dict[str, object] = {
            "xsa": x.xsa,
            "status": x.status,
            # A placed prerequisite's `before` changes the build; unplaced ones are written
            # as they always were, so their digests (and published records) stay valid.
            "prerequisites": [
                p.commit if p.before is None else [p.commit, p.before] for p in x.prerequisites
            ],
            "commits": list(x.commits),
            # The file name is in the commit's provenance line, so it is an input too.
            "patches": [[p.sha256, posixpath.basename(p.path or p.url or "")] for p in x.patches],
        }
        if x.partial:  # only when set: the digests of manifests without one stay as they were
            entry["partial"] = [p.commit for p in x.partial]
        xsas.append(entry)
    payload = {
        "format": FORMAT,
        "bot": bot_version,
        "committer": list(committer),
        "tree": manifest.tree,
        "source": manifest.source,
        "base": base_commit,
        "xsas": xsas,
    }
    if check:  # a new check command re-evaluates the branch; none keeps old digests valid
        payload["check"] = check
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


class _Stored(BaseModel):
    """What the bot writes into notes and reads back: anything else there is unreadable."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", json_schema_serialization_defaults_required=True
    )


class XsaRecord(_Stored):
    xsa: int
    state: str
    prerequisites: tuple[str, ...] = ()
    commits: tuple[str, ...] = ()
    patches: tuple[str, ...] = ()
    blocked_commit: str | None = None
    paths: tuple[str, ...] = ()
    reason: str = ""
    detail: str = ""
    waits_for: tuple[int, ...] = ()  # reason `waits-for`: the blocked XSAs the fix needs
    # Commits applied although they land differently than on source, as the manifest's
    # `partial` accepts (absent from records written before it existed).
    accepted_partial: tuple[str, ...] = ()
    # Applied and the check passed, but the check compiled none of these C files it changes.
    not_compiled: tuple[str, ...] = ()


class ProposalsRecord(_Stored):
    """The proposals (merge requests) a record's build asks for, once the proposal step has
    worked them out: every pass holds the forge against it, and only searches again when the
    forge differs or `basis` changed, so a pass that did not finish is completed by the next.

    `basis`: a digest of what the proposals depend on besides the build (the manifest's text
    and path, the bot's name); `wanted`: each wanted proposal's branch and content hash."""

    basis: str
    wanted: dict[str, str] = {}


class CheckRunRecord(_Stored):
    """One check the build's gate ran: its cost, and whether it was incremental (in the
    line's build directory moved from an earlier tree) or on a clean export."""

    tree: str
    seconds: float
    incremental: bool
    passed: bool


class BuildRecord(_Stored):
    manifest: str
    branch: str
    inputs: str
    base: str
    base_commit: str
    build: str  # the tip `xsabot build` gives; the published tip is it or a pseudo-merge of it
    xsas: tuple[XsaRecord, ...] = ()
    bot: str = ""
    source_commit: str = ""  # the source tip the build saw
    proposals: ProposalsRecord | None = None  # None: not worked out yet (`ProposalsRecord`)
    checks: tuple[CheckRunRecord, ...] = ()  # the checks the gate ran for this build

    def states(self, state: str) -> list[int]:
        return [x.xsa for x in self.xsas if x.state == state]

    def stale_for(self, source_commit: str) -> bool:
        """A commit that was not on the source may be there now: only then does the source
        tip matter (every other input is in the digest)."""
        waiting = any(x.reason == "bad-source" for x in self.xsas)
        return waiting and source_commit != self.source_commit

    @classmethod
    def from_dict(cls, data: object) -> BuildRecord | UnreadableRecord:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            return UnreadableRecord(_why(exc.errors(), whole="the record"))


class NoteDocument(_Stored):
    """The JSON of one note (`refs/notes/xsabot`): the records of every branch at a commit."""

    format: Literal[2]  # FORMAT
    records: dict[str, BuildRecord]


@dataclass(frozen=True)
class UnreadableRecord:
    """A record (or the note holding it) that cannot be read, and why. It costs a rebuild,
    and is reported: a note edited by hand must not pass for a missing one."""

    why: str

    @property
    def problem(self) -> str:
        return f"build record unreadable: {self.why}"


@dataclass(frozen=True)
class NoteRecords:
    """What a note holds: the readable records by branch, and why the others are not.

    `why`: the whole note is unreadable (not JSON, another format), so no branch's record is
    known; `unreadable`: records of single branches that are broken."""

    records: Mapping[str, BuildRecord] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)
    why: str = ""

    def get(self, branch: str) -> BuildRecord | UnreadableRecord | None:
        """The branch's record; None when the note has none for it."""
        if branch in self.records:
            return self.records[branch]
        why = self.unreadable.get(branch) or self.why
        return UnreadableRecord(why) if why else None


def note_text(existing: str | None, records: list[BuildRecord]) -> str:
    """The note of one published commit: the records of every branch at that commit (two
    manifests can build the same commit), `existing` readable ones kept unless replaced;
    the summary of each first (`summary`), the JSON after it."""
    by_branch = dict(note_records(existing).records) if existing else {}
    for record in records:
        by_branch[record.branch] = record
    note = NoteDocument(format=FORMAT, records=dict(sorted(by_branch.items())))
    data = json.dumps(note.model_dump(mode="json"), indent=1, sort_keys=True)
    shown = "\n".join(summary(r) for r in note.records.values())
    return f"{shown}\n\n{data}\n"


def summary(record: BuildRecord) -> str:
    """A record in a few lines for people: what the branch holds on which base, what it
    does not hold and why, and where it comes from. No line starts with `{`."""
    held = record.states("applied")
    blocked = [x for x in record.xsas if x.state == "blocked"]
    head = f"{record.branch}: {record.base} + {_count(len(held), 'XSA')}"
    if blocked:
        head += f", {len(blocked)} blocked"
    lines = [f"{head} (manifest {record.manifest})"]
    if held:
        lines += _wrapped("  held: ", _numbers(held))
    if record.states("already-applied"):
        lines += _wrapped("  in the base already: ", _numbers(record.states("already-applied")))
    for x in blocked:
        lines.append(f"  blocked: XSA-{x.xsa} ({_blocked_why(x)})")
    for x in record.xsas:
        if x.state not in ("applied", "already-applied", "blocked"):
            lines.append(f"  not applied: XSA-{x.xsa} ({x.state} in the manifest)")
    lines.append(f"  inputs {record.inputs[:12]}, build {record.build[:12]}")
    return "\n".join(lines)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _wrapped(first: str, text: str) -> list[str]:
    return textwrap.wrap(text, width=78, initial_indent=first, subsequent_indent=" " * len(first))


def _numbers(xsas: Sequence[int]) -> str:
    return ", ".join(f"XSA-{n}" for n in xsas)


def _blocked_why(x: XsaRecord) -> str:
    why = x.reason or "no reason recorded"
    if x.waits_for:
        why += " " + _numbers(x.waits_for)
    elif x.paths:
        why += " in " + ", ".join(x.paths)
    detail = x.detail.strip().splitlines()[0] if x.detail.strip() else ""
    return f"{why}: {detail}" if detail else why


def note_json(text: str) -> str | None:
    """The machine part of a note: all of an old note (JSON only), or what follows the
    summary from the first line that starts with `{`; None when there is none."""
    if text.lstrip().startswith(("{", "[")):  # a note from before the summary, or not ours
        return text
    at = text.find("\n{")
    return text[at + 1 :] if at >= 0 else None


def note_records(text: str) -> NoteRecords:
    """The records in a note, by branch, and why those that cannot be read cannot."""
    data_text = note_json(text)
    if data_text is None:
        return NoteRecords(why="the note has no JSON record after its summary")
    try:
        data = json.loads(data_text)
    except ValueError as exc:
        return NoteRecords(why=f"the note is not JSON ({exc})")
    try:
        return NoteRecords(records=NoteDocument.model_validate(data).records)
    except ValidationError as exc:
        errors = exc.errors()
    in_records = [e for e in errors if len(e["loc"]) > 1 and e["loc"][0] == "records"]
    if len(in_records) < len(errors):  # the note itself is wrong: no record can be trusted
        return NoteRecords(why=_why([e for e in errors if e not in in_records], whole="the note"))
    records: dict[str, BuildRecord] = {}
    unreadable: dict[str, str] = {}
    for branch, raw in data["records"].items():
        record = BuildRecord.from_dict(raw)
        if isinstance(record, BuildRecord):
            records[branch] = record
        else:
            unreadable[branch] = record.why
    return NoteRecords(records, unreadable)


def _why(errors: Sequence[ErrorDetails], *, whole: str) -> str:
    """pydantic's errors as one line: where in the JSON (`whole` when it is the top), and
    what is wrong there."""
    shown = [f"{_where(e['loc']) or whole}: {e['msg']}{_got(e)}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(shown) + more


def _got(error: ErrorDetails) -> str:
    value = error.get("input")
    if error["type"] == "missing" or not isinstance(value, str | int | float | bool):
        return ""
    shown = repr(value)
    return f" (got {shown[:40]}...)" if len(shown) > 40 else f" (got {shown})"


def _where(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def make_record(
    *,
    name: str,
    manifest: Manifest,
    inputs: str,
    result: BuildResult,
    bot: str,
    checks: tuple[CheckRunRecord, ...] = (),
) -> BuildRecord:
    outcomes = {o.xsa: o for o in result.outcomes}
    xsas = []
    for entry in manifest.xsas:
        outcome = outcomes.get(entry.xsa)
        blocked = outcome.blocked if outcome else None
        xsas.append(
            XsaRecord(
                xsa=entry.xsa,
                state=outcome.state if outcome else "not-built",
                prerequisites=tuple(p.commit for p in entry.prerequisites),
                commits=entry.commits,
                patches=tuple(p.sha256 for p in entry.patches),
                blocked_commit=blocked.commit if blocked else None,
                paths=blocked.paths if blocked else (),
                reason=blocked.reason if blocked else "",
                detail=blocked.detail if blocked else "",
                waits_for=blocked.waits_for if blocked else (),
                accepted_partial=outcome.accepted_partial if outcome else (),
                not_compiled=outcome.not_compiled if outcome else (),
            )
        )
    return BuildRecord(
        manifest=name,
        branch=manifest.branch,
        inputs=inputs,
        base=manifest.base,
        base_commit=result.base_commit,
        build=result.tip,
        xsas=tuple(xsas),
        bot=bot,
        source_commit=result.source_commit,
        checks=checks,
    )
