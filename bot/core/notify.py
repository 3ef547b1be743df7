"""Notifications, decided: what a pass tells people, given what it told them before. No I/O.

A branch is in one *condition* at a time: `ok`, `blocked` (XSAs not on it: conflicts,
waits-for, held back by the check), or `kept` (the pass would not withdraw a published XSA,
or someone else moved the branch). A message goes out when the condition changes (blocked,
a different set blocked, recovered, kept), when a pass publishes new XSAs or a pseudo-merge,
when a proposal is opened, and when a tree's environment has failed for longer than the
grace. An unchanged condition says nothing: no alert spam.

What was said is kept in a `NotifyDoc` (the mirror's `refs/xsabot/notified`, pushed in the
same atomic push as the branches, so every replica sees it): each branch's last condition,
and an outbox of events not yet delivered to every channel. An event's `key` (branch, kind,
digest of its content) is stable: its text is the same whoever renders it, and it is the
email's Message-ID, so a receiver can drop a repeat. Delivery is claimed (owner, until) in a
push before sending and marked sent in a push after: at-least-once, a repeat only when a
sender dies between the send and the mark.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from bot.core.reports import BranchReport

Kind = Literal[
    "blocked",
    "recovered",
    "kept",
    "published",
    "pseudo-merge",
    "proposal",
    "environment",
    "environment-recovered",
    "test",
]
CLAIM_SECONDS = 600.0  # a claim older than this is a dead sender's: others may retry
BACKOFF_FIRST = 60.0
BACKOFF_MAX = 3600.0
MAX_ATTEMPTS = 24  # about a day at the longest backoff; then the event is dropped (counted)
DOC_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(_Model):
    """What happened to a branch (or a tree's environment): the facts a message is made of."""

    kind: Kind
    branch: str  # for an environment event, `tree <name>`
    manifest: str = ""
    xsas: tuple[int, ...] = ()
    lines: tuple[str, ...] = ()  # details: each blocked XSA and why, the pseudo-merge's changes
    tip: str | None = None  # the branch's tip, when the pass moved it
    published: tuple[int, ...] = ()  # XSAs the pass published that the branch lacked
    changes: tuple[str, ...] = ()  # a pseudo-merge's changes
    url: str | None = None  # a proposal's merge request

    @property
    def key(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return f"{self.branch}:{self.kind}:{digest}"


class Pending(_Model):
    """An event in the outbox: the channels still to reach, and the retry schedule."""

    key: str
    event: Event
    channels: tuple[str, ...] = ()  # still to reach; set when first claimed
    claimed: bool = False  # channels set and text rendered
    mrs: dict[int, str] = {}  # XSA -> the bot's merge request (URL), known when claimed
    mr_ids: dict[int, int] = {}  # XSA -> that merge request's ID, for a comment on it
    attempts: int = 0
    next_attempt: float = 0.0
    owner: str = ""
    claimed_until: float = 0.0
    last_error: str = ""


class ChannelCounts(_Model):
    sent: int = 0
    failed: int = 0
    dropped: int = 0


class NotifyDoc(_Model):
    version: int = DOC_VERSION
    conditions: dict[str, str] = {}  # branch -> condition key (`ok`, `blocked:<digest>`, ...)
    applied: dict[str, tuple[int, ...]] = {}  # branch -> XSAs published, as last said
    environment: dict[str, float] = {}  # tree -> since when its pass fails (local doc only)
    environment_said: tuple[str, ...] = ()  # trees whose failure was announced
    outbox: tuple[Pending, ...] = ()
    counts: dict[str, ChannelCounts] = {}  # cumulative, per channel

    def to_text(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_text(cls, text: str) -> NotifyDoc:
        """The document, or an empty one when it cannot be read (a newer bot's, damaged):
        the worst that costs is one repeated message per branch."""
        try:
            return cls.model_validate_json(text)
        except ValueError:
            return cls()


@dataclass(frozen=True)
class Message:
    """One notification as the channels send it."""

    key: str
    kind: Kind
    branch: str
    subject: str
    body: str
    xsas: tuple[int, ...] = ()
    url: str | None = None  # the merge request to review, when there is one
    mr_id: int | None = None


class Channel(Protocol):
    """A way to reach people (`bot/notify/*`): raises `bot.errors.NotifyError` on failure."""

    @property
    def name(self) -> str: ...

    def send(self, message: Message) -> None: ...


# -- conditions and events --------------------------------------------------------------------


def _digest(lines: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def condition(report: BranchReport) -> tuple[str, Event | None] | None:
    """The branch's condition key and, unless `ok`, the event that announces it; None when
    the pass says nothing about it (a manifest or environment error: the branch is unknown)."""
    if report.branch is None:
        return None
    base = {"branch": report.branch, "manifest": report.manifest}
    if report.action == "kept":
        kept = tuple(f"XSA-{w.xsa}: {w.why} ({w.where})" for w in report.would_withdraw)
        kept = kept or report.problems
        event = Event(
            kind="kept", xsas=tuple(w.xsa for w in report.would_withdraw), lines=kept, **base
        )
        return f"kept:{_digest(kept)}", event
    if report.action == "error":
        return None
    if report.blocked:
        held = set(report.check.held_back) if report.check else set()
        lines = []
        for b in report.blocked:
            why = "held back: the branch with it fails the check" if b.xsa in held else b.reason
            if b.waits_for:
                why += " (waits for " + ", ".join(f"XSA-{w}" for w in b.waits_for) + ")"
            where = f" in {', '.join(b.paths)}" if b.paths else ""
            lines.append(f"XSA-{b.xsa}: {why}{where}")
        event = Event(
            kind="blocked", xsas=tuple(b.xsa for b in report.blocked), lines=tuple(lines), **base
        )
        return f"blocked:{_digest(lines)}", event
    return "ok", None


def branch_events(doc: NotifyDoc, reports: Sequence[BranchReport]) -> tuple[NotifyDoc, list[Event]]:
    """What this pass's reports say that the document has not said yet, and the document
    with it said (queued in the outbox). Called before the push that publishes them. One
    event per branch at most: a condition change carries what was published with it."""
    conditions = dict(doc.conditions)
    applied = dict(doc.applied)
    events: list[Event] = []
    for report in reports:
        found = condition(report)
        if found is None or report.branch is None:
            continue
        key, event = found
        branch = report.branch
        before = conditions.get(branch)
        conditions[branch] = key
        if key == before:
            event = None
        elif event is None and before is not None:  # ok after blocked or kept
            event = Event(kind="recovered", branch=branch, manifest=report.manifest)
        moved = report.action in ("create", "fast-forward", "pseudo-merge")
        new = tuple(x for x in report.applied if x not in applied.get(branch, ())) if moved else ()
        rewritten = report.action == "pseudo-merge"
        if report.action != "kept":
            applied[branch] = report.applied
        if not (new or rewritten):
            if event is not None:
                events.append(event)
            continue
        published = {"published": new, "tip": report.tip, "changes": report.changes}
        if event is None:
            kind: Kind = "pseudo-merge" if rewritten else "published"
            event = Event(kind=kind, branch=branch, manifest=report.manifest)
        events.append(event.model_copy(update=published))
    new_doc = doc.model_copy(update={"conditions": conditions, "applied": applied})
    return enqueue(new_doc, events), events


def enqueue(doc: NotifyDoc, events: Iterable[Event]) -> NotifyDoc:
    """`doc` with `events` in its outbox, each key once; a proposal for an XSA whose blocked
    message is still to be sent is said by that message (it names the merge request)."""
    queued = {p.key for p in doc.outbox}
    blocked = {
        (p.event.manifest, x)
        for p in doc.outbox
        if p.event.kind == "blocked" and not p.claimed
        for x in p.event.xsas
    }
    added = []
    for event in events:
        if event.kind == "proposal" and (event.manifest, *event.xsas) in blocked:
            continue
        if event.key not in queued:
            queued.add(event.key)
            added.append(Pending(key=event.key, event=event))
    return doc.model_copy(update={"outbox": (*doc.outbox, *added)}) if added else doc


def environment_events(
    doc: NotifyDoc, failed: Mapping[str, str], fine: Iterable[str], now: float, grace: float
) -> NotifyDoc:
    """Track each tree's environment failure (`failed`: tree -> what went wrong); one event
    once it has lasted `grace` seconds, one when it recovers after that."""
    since = dict(doc.environment)
    said = set(doc.environment_said)
    events: list[Event] = []
    for tree, what in sorted(failed.items()):
        start = since.setdefault(tree, now)
        if now - start >= grace and tree not in said:
            said.add(tree)
            lines = (what.splitlines()[0] if what else "",)
            events.append(Event(kind="environment", branch=f"tree {tree}", lines=lines))
    for tree in sorted(set(fine) - set(failed)):
        since.pop(tree, None)
        if tree in said:
            said.discard(tree)
            events.append(Event(kind="environment-recovered", branch=f"tree {tree}"))
    updated = doc.model_copy(update={"environment": since, "environment_said": tuple(sorted(said))})
    return enqueue(updated, events)


# -- delivery ---------------------------------------------------------------------------------


def due(doc: NotifyDoc, now: float, me: str) -> list[Pending]:
    """The outbox entries this sender may take now: its own claims, and the others' whose
    claim ran out (a sender that died) once their retry time has come."""
    return [
        p
        for p in doc.outbox
        if (p.owner == me and p.claimed_until > now)
        or (p.claimed_until <= now and p.next_attempt <= now)
    ]


def claim(
    doc: NotifyDoc,
    keys: Iterable[str],
    *,
    me: str,
    now: float,
    channels: Sequence[str],
    mrs: Mapping[str, Mapping[int, tuple[int, str]]],
) -> NotifyDoc:
    """`doc` with the entries `keys` claimed by `me` until `now + CLAIM_SECONDS`; an entry
    claimed for the first time gets the channels to reach and its merge requests (`mrs`:
    manifest -> XSA -> (ID, URL)), fixed from then on so that every retry says the same."""
    wanted = set(keys)
    outbox = []
    for p in doc.outbox:
        if p.key in wanted:
            fields: dict[str, object] = {"owner": me, "claimed_until": now + CLAIM_SECONDS}
            if not p.claimed:
                known = mrs.get(p.event.manifest, {})
                fields |= {
                    "claimed": True,
                    "channels": tuple(channels),
                    "mrs": {x: known[x][1] for x in p.event.xsas if x in known},
                    "mr_ids": {x: known[x][0] for x in p.event.xsas if x in known},
                }
            p = p.model_copy(update=fields)
        outbox.append(p)
    return doc.model_copy(update={"outbox": tuple(outbox)})


def backoff(attempts: int, first: float = BACKOFF_FIRST) -> float:
    """Seconds before retry number `attempts` + 1: `first`, twice that, four times ...,
    at most an hour."""
    return float(min(first * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


@dataclass(frozen=True)
class Sent:
    """One entry's sending: the channels it reached, and the error of each it did not."""

    key: str
    reached: tuple[str, ...]
    errors: Mapping[str, str]


def record(
    doc: NotifyDoc, results: Iterable[Sent], *, me: str, now: float, first: float = BACKOFF_FIRST
) -> NotifyDoc:
    """`doc` with the results of `me`'s sending: an entry that reached every channel leaves
    the outbox; one that did not is released for a retry after `backoff`, or dropped after
    `MAX_ATTEMPTS`. Results for entries no longer in the outbox (another sender finished
    them) only count."""
    counts = {name: c.model_copy() for name, c in doc.counts.items()}

    def bump(channel: str, what: str) -> None:
        c = counts.get(channel, ChannelCounts())
        counts[channel] = c.model_copy(update={what: getattr(c, what) + 1})

    by_key = {r.key: r for r in results}
    outbox = []
    for p in doc.outbox:
        r = by_key.get(p.key)
        if r is None:
            outbox.append(p)
            continue
        for channel in r.reached:
            bump(channel, "sent")
        for channel in r.errors:
            bump(channel, "failed")
        left = tuple(c for c in p.channels if c not in r.reached)
        if not left:
            continue
        attempts = p.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            for channel in left:
                bump(channel, "dropped")
            continue
        outbox.append(
            p.model_copy(
                update={
                    "channels": left,
                    "attempts": attempts,
                    "next_attempt": now + backoff(attempts, first),
                    "owner": "",
                    "claimed_until": 0.0,
                    "last_error": "; ".join(f"{c}: {e}" for c, e in sorted(r.errors.items())),
                }
            )
        )
    return doc.model_copy(update={"outbox": tuple(outbox), "counts": counts})


def pending_per_channel(doc: NotifyDoc, channels: Sequence[str]) -> dict[str, int]:
    """How many outbox entries still wait for each channel."""
    out = dict.fromkeys(channels, 0)
    for p in doc.outbox:
        for c in p.channels if p.claimed else channels:
            if c in out:
                out[c] += 1
    return out


# -- text -------------------------------------------------------------------------------------


def _xsas(xsas: Sequence[int]) -> str:
    return ", ".join(f"XSA-{x}" for x in xsas)


def render(p: Pending) -> Message:
    """The message of an outbox entry: the same text for the same entry, whoever sends it,
    and each says what to do."""
    e = p.event
    b = e.branch
    reproduce = f"xsabot plan    # or: xsabot build manifests/{e.manifest}.yaml"
    lines: list[str]
    if e.kind == "blocked":
        subject = f"{b}: {_xsas(e.xsas)} blocked"
        lines = [f"{b} is published without {_xsas(e.xsas)}:", ""]
        lines += [f"  {line}" for line in e.lines]
        lines += [""]
        for x in e.xsas:
            if x in p.mrs:
                lines.append(f"Review the bot's merge request for XSA-{x}: {p.mrs[x]}")
        if not any(x in p.mrs for x in e.xsas):
            lines.append(f"Find what it needs: xsabot deps manifests/{e.manifest}.yaml XSA")
        lines += [f"Reproduce: {reproduce}"]
    elif e.kind == "recovered":
        subject = f"{b}: recovered"
        lines = [f"{b} is no longer blocked or kept: it holds what its manifest lists.", ""]
        lines += ["Nothing to do."]
    elif e.kind == "kept":
        withdrawn = f", {_xsas(e.xsas)} would be withdrawn" if e.xsas else ""
        subject = f"{b}: kept at its tip{withdrawn}"
        lines = [f"{b} is not published: the pass keeps its tip.", ""]
        lines += [f"  {line}" for line in e.lines]
        lines += [
            "",
            "Fix the manifest entry named above (or say `status: blocked` to withdraw it on "
            "purpose); if someone else moved the branch, put it back to the bot's last tip.",
            f"Reproduce: {reproduce}",
        ]
    elif e.kind == "published":
        subject = f"{b}: {_xsas(e.published)} published"
        lines = []
    elif e.kind == "pseudo-merge":
        subject = f"{b}: moved by a pseudo-merge"
        lines = [f"Downstreams: {b} did not fast-forward; merge it or rebase onto it."]
    elif e.kind == "proposal":
        subject = f"{b}: merge request for {_xsas(e.xsas)} opened"
        lines = [
            f"The bot opened a merge request with what {_xsas(e.xsas)} needs: {e.url}",
            "Review and merge it: the next pass publishes the XSA.",
        ]
    elif e.kind == "environment":
        subject = f"{b}: passes fail for the environment"
        lines = [f"Passes of {b} fail, not for any manifest:", "", f"  {e.lines[0]}", ""]
        lines += ["Check the upstream, the mirror and the credentials.", "Reproduce: xsabot plan"]
    elif e.kind == "environment-recovered":
        subject = f"{b}: passes work again"
        lines = ["Nothing to do."]
    else:
        subject = "test message"
        lines = ["This is a test of xsabot's notifications (xsabot notify --test)."]
    if e.tip:
        lines += [""] if lines else []
        if e.published:
            lines.append(f"Published: {_xsas(e.published)}.")
        if e.changes:
            lines += ["Changes (a pseudo-merge keeps the old history):"]
            lines += [f"  {c}" for c in e.changes]
        lines += [f"Tip of {b}: {e.tip}"]
    url = next((p.mrs[x] for x in e.xsas if x in p.mrs), e.url)
    mr_id = next((p.mr_ids[x] for x in e.xsas if x in p.mr_ids), None)
    body = "\n".join([*lines, "", f"-- xsabot; notification {p.key}"]) + "\n"
    return Message(
        key=p.key,
        kind=e.kind,
        branch=b,
        subject=f"[xsabot] {subject}",
        body=body,
        xsas=e.xsas or e.published,
        url=url,
        mr_id=mr_id,
    )
