"""Notifications: staged with the pass's push, delivered after its proposals.

`reconcile` makes one `Notifier`. The pass calls `stage` for each tree just before its push:
the events its reports hold (`bot.core.notify.branch_events`) go into the tree's notification
document, `refs/xsabot/notified` in the mirror, in the same atomic push as the branches (so a
push that fails, for a lease another replica won, says nothing either). After the proposals,
`deliver` claims the outbox's due entries in a push leased on that document (one sender per
entry, whichever replica), sends them, and records what was reached in a second push. An
environment failure cannot be written to a mirror that may be unreachable: it is tracked in
the state dir (`notify/environment.json`), per replica.

Delivery is at-least-once: a sender that dies between its send and its record leaves a claim
that runs out (`CLAIM_SECONDS`), and the entry is sent again, with the same key (the email's
Message-ID), which receivers can drop. A failed send never fails the pass: it is counted and
retried on later passes with backoff.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.app.pass_ import PassOutcome
from bot.app.wiring import DEFAULT, Adapters
from bot.config import Config
from bot.core.notify import (
    Channel,
    Event,
    Message,
    NotifyDoc,
    Pending,
    Sent,
    branch_events,
    claim,
    due,
    enqueue,
    environment_events,
    pending_per_channel,
    record,
    render,
)
from bot.core.refs import NOTIFIED_REF, WritableRefs
from bot.core.reports import BranchReport, NotificationsReport, NotifyCounts, ProposalAction
from bot.errors import XsabotError
from bot.git.commits import format_commit, identity_line, parse_commit
from bot.git.objects import ObjectStore
from bot.git.publish import RefUpdate
from bot.git.trees import BLOB
from bot.git.workrepo import MIRROR, WorkRepo
from bot.redact import redact

log = logging.getLogger(__name__)
DOC_FILE = b"notified.json"
FETCHED = MIRROR + "xsabot/notified"


def make_channels(config: Config, adapters: Adapters = DEFAULT) -> list[Channel | str]:
    """The configured channels; a channel that cannot be set up (a secret's variable unset)
    is its error text instead, so each send to it fails and is retried."""
    made: list[Channel | str] = []
    notify = config.notify
    if notify.email is not None:
        from bot.notify.email import EmailChannel

        made.append(_made("email", lambda: EmailChannel(notify.email)))  # type: ignore[arg-type]
    if notify.webhook is not None:
        from bot.notify.webhook import WebhookChannel

        made.append(_made("webhook", lambda: WebhookChannel(notify.webhook)))  # type: ignore[arg-type]
    if notify.forge_comment:
        from bot.notify.forge_comment import ForgeCommentChannel

        made.append(_made("forge_comment", lambda: ForgeCommentChannel(adapters.forge(config))))
    return made


def _made(name: str, make: Callable[[], Channel]) -> Channel | str:
    try:
        return make()
    except XsabotError as exc:
        return f"{name}: {redact(str(exc))}"


def send_all(message: Message, channels: Sequence[Channel | str]) -> dict[str, str | None]:
    """Send `message` to each channel: name -> None when reached, else why not."""
    out: dict[str, str | None] = {}
    for channel in channels:
        if isinstance(channel, str):
            name, _, why = channel.partition(": ")
            out[name] = why
            continue
        try:
            channel.send(message)
            out[channel.name] = None
        except XsabotError as exc:
            out[channel.name] = redact(str(exc))
    return out


def send_test(config: Config, adapters: Adapters = DEFAULT) -> dict[str, str | None]:
    """`xsabot notify --test`: one test message to every configured channel; channel ->
    None when reached, else why not. Records nothing."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = Event(kind="test", branch="xsabot", lines=(stamp,))
    pending = Pending(key=f"test:{stamp}:{uuid.uuid4().hex[:8]}", event=event)
    return send_all(render(pending), make_channels(config, adapters))


# -- the document in the mirror ---------------------------------------------------------------


def read_doc(store: ObjectStore, commit: str | None) -> NotifyDoc:
    if commit is None:
        return NotifyDoc()
    tree = parse_commit(store.read(commit)[1]).tree
    entry = store.tree_entries(bytes.fromhex(tree)).get(DOC_FILE)
    if entry is None:
        return NotifyDoc()
    return NotifyDoc.from_text(store.blob(entry[1]).decode("utf-8", "replace"))


def write_doc(store: ObjectStore, doc: NotifyDoc, config: Config) -> str:
    """A commit (no parent: only the latest document matters) holding `doc`."""
    blob = store.write_bin("blob", doc.to_text().encode())
    tree = store.write_tree_bin({DOC_FILE: (BLOB, blob)}).hex()
    ident = identity_line(config.identity.name, config.identity.email, b"%d +0000" % time.time())
    raw = format_commit(
        tree=tree, parents=(), author=ident, committer=ident, message=b"xsabot: notifications\n"
    )
    return store.write("commit", raw)


@dataclass
class _Staged:
    work: WorkRepo
    store: ObjectStore
    doc: NotifyDoc  # as the pass's push leaves it, if the push went through
    before: str | None  # the document's commit in the mirror when fetched
    pushed: str | None  # the commit the pass's push carried, if the document changed
    branches: dict[str, str] = field(default_factory=dict)  # manifest -> branch


class Notifier:
    """One reconcile's notifications: `stage` per tree in the pass, then `deliver`."""

    def __init__(
        self,
        config: Config,
        adapters: Adapters = DEFAULT,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.adapters = adapters
        self.clock = clock
        self.me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.staged: dict[str, _Staged] = {}
        self.environment_failures: dict[str, str] = {}
        self.environment_fine: tuple[str, ...] = ()

    @property
    def _retry(self) -> float:
        return self.config.notify.retry_seconds

    def stage(
        self, tree: str, work: WorkRepo, store: ObjectStore, reports: list[BranchReport]
    ) -> list[RefUpdate]:
        """The update of the tree's notification document that goes into the pass's push."""
        before = work.resolve(FETCHED)
        doc = read_doc(store, before)
        new, events = branch_events(doc, reports)
        names = {r.manifest: r.branch for r in reports if r.branch}
        if new == doc:
            self.staged[tree] = _Staged(work, store, doc, before, None, names)
            return []
        for event in events:
            log.info("notification queued: %s", event.key)
        pushed = write_doc(store, new, self.config)
        self.staged[tree] = _Staged(work, store, new, before, pushed, names)
        return [RefUpdate(NOTIFIED_REF, pushed, before)]

    def deliver(self, proposals: Sequence[ProposalAction]) -> NotificationsReport:
        """Send what is due in every staged tree, and the environment's; never raises."""
        channels = make_channels(self.config, self.adapters)
        names = [c if isinstance(c, str) else c.name for c in channels]
        names = [n.partition(": ")[0] for n in names]
        sent = dict.fromkeys(names, 0)
        failed = dict.fromkeys(names, 0)
        pending = dict.fromkeys(names, 0)

        def count(results: list[Sent], doc: NotifyDoc) -> None:
            for r in results:
                for c in r.reached:
                    sent[c] = sent.get(c, 0) + 1
                for c in r.errors:
                    failed[c] = failed.get(c, 0) + 1
            for c, n in pending_per_channel(doc, names).items():
                pending[c] += n

        for tree, staged in sorted(self.staged.items()):
            try:
                results, doc = self._deliver_tree(tree, staged, proposals, channels, names)
            except XsabotError as exc:  # the mirror went away meanwhile: next pass
                log.warning("notifications of tree %s: %s", tree, redact(str(exc)))
                continue
            count(results, doc)
        try:
            results, doc = self._deliver_local(channels, names)
            count(results, doc)
        except OSError as exc:
            log.warning("notifications of the environment: %s", exc)
        return NotificationsReport(
            sent=sum(sent.values()),
            failed=sum(failed.values()),
            pending=sum(pending.values()),
            channels={
                n: NotifyCounts(sent=sent[n], failed=failed[n], pending=pending[n]) for n in names
            },
        )

    # -- one tree ---------------------------------------------------------------------------

    def _deliver_tree(
        self,
        tree: str,
        staged: _Staged,
        proposals: Sequence[ProposalAction],
        channels: Sequence[Channel | str],
        names: Sequence[str],
    ) -> tuple[list[Sent], NotifyDoc]:
        mirror = self.config.mirror_of(tree)
        work, store = staged.work, staged.store
        if staged.pushed is not None:
            current = work.remote_refs(mirror, [NOTIFIED_REF]).get(NOTIFIED_REF)
            if current != staged.pushed:
                # The pass's push did not land (a lease lost to another replica), or another
                # replica has written since: what it holds is its to send, or ours next pass.
                return [], staged.doc
        # Otherwise the claim's lease checks that nobody wrote since the fetch: a no-op pass
        # with nothing due costs nothing here.
        expected = staged.pushed or staged.before
        doc = staged.doc
        mine = [p for p in proposals if p.manifest in staged.branches]
        opened = [
            Event(
                kind="proposal",
                branch=staged.branches[p.manifest],
                manifest=p.manifest,
                xsas=(p.xsa,),
                url=p.url,
            )
            for p in mine
            if p.action == "open" and not p.error and p.url
        ]
        doc = enqueue(doc, opened)
        now = self.clock()
        take = due(doc, now, self.me)
        if not take:
            return [], doc
        mrs: dict[str, dict[int, tuple[int, str]]] = {}
        for p in mine:
            if p.id is not None and p.url and not p.error:
                mrs.setdefault(p.manifest, {})[p.xsa] = (p.id, p.url)
        claimed = claim(doc, [p.key for p in take], me=self.me, now=now, channels=names, mrs=mrs)
        claimed_sha = self._push(tree, work, store, claimed, expected)
        if claimed_sha is None:
            return [], doc
        keys = {p.key for p in take}
        results = self._send([p for p in claimed.outbox if p.key in keys], channels)
        done = record(claimed, results, me=self.me, now=self.clock(), first=self._retry)
        for _ in range(3):
            if self._push(tree, work, store, done, claimed_sha) is not None:
                return results, done
            # Another replica wrote in between (a pass of its own): record on top of its.
            work.fetch_mirror(mirror, self.config.namespace, create=False)
            claimed_sha = work.resolve(FETCHED)
            done = record(
                read_doc(store, claimed_sha),
                results,
                me=self.me,
                now=self.clock(),
                first=self._retry,
            )
        log.warning("notifications of tree %s: sent, but could not record it", tree)
        return results, done

    def _push(
        self, tree: str, work: WorkRepo, store: ObjectStore, doc: NotifyDoc, old: str | None
    ) -> str | None:
        sha = write_doc(store, doc, self.config)
        store.flush([sha])
        update = RefUpdate(NOTIFIED_REF, sha, old)
        writable = WritableRefs.of(self.config.namespace)
        result = self.adapters.push(work, self.config.mirror_of(tree), [update], writable=writable)
        if not result.ok:
            log.info("notifications of tree %s: %s", tree, result.message)
            return None
        return sha

    def _send(self, entries: Sequence[Pending], channels: Sequence[Channel | str]) -> list[Sent]:
        results = []
        for p in entries:
            message = render(p)
            wanted = [c for c in channels if _name(c) in p.channels]
            outcome = send_all(message, wanted)
            configured = {_name(c) for c in channels}
            reached = [n for n, why in outcome.items() if why is None]
            reached += [c for c in p.channels if c not in configured]  # no longer configured
            errors = {n: why for n, why in outcome.items() if why is not None}
            for n, why in errors.items():
                log.warning("notification %s via %s failed: %s", p.key, n, why)
            results.append(Sent(p.key, tuple(reached), errors))
        return results

    # -- the environment, in the state dir ----------------------------------------------------

    def _deliver_local(
        self, channels: Sequence[Channel | str], names: Sequence[str]
    ) -> tuple[list[Sent], NotifyDoc]:
        path = self.config.state / "notify" / "environment.json"
        doc = NotifyDoc.from_text(path.read_text()) if path.exists() else NotifyDoc()
        now = self.clock()
        doc = environment_events(
            doc,
            self.environment_failures,
            self.environment_fine,
            now,
            self.config.notify.environment_grace,
        )
        take = due(doc, now, self.me)
        results: list[Sent] = []
        if take:
            doc = claim(doc, [p.key for p in take], me=self.me, now=now, channels=names, mrs={})
            keys = {p.key for p in take}
            results = self._send([p for p in doc.outbox if p.key in keys], channels)
            doc = record(doc, results, me=self.me, now=self.clock(), first=self._retry)
        _write_atomically(path, doc.to_text())
        return results, doc

    def observe(self, outcome: PassOutcome) -> None:
        """Which trees' passes failed for the environment (unreachable, push refused)."""
        tree_of = {m.name: m.manifest.tree for m in outcome.manifests}
        failed: dict[str, str] = {}
        for report in outcome.report.branches:
            tree = tree_of.get(report.manifest)
            if tree is None or report.action != "error":
                continue
            pushed = [p for p in report.problems if p.startswith("push failed")]
            if tree not in outcome.trees or pushed:
                failed.setdefault(tree, (pushed or list(report.problems) or ["failed"])[0])
        self.environment_failures = failed
        self.environment_fine = tuple(sorted(set(tree_of.values()) - set(failed)))


def _name(channel: Channel | str) -> str:
    return channel.partition(": ")[0] if isinstance(channel, str) else channel.name


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
