"""`reconcile`: the bot's whole job, once: a pass (fetch, build, check, publish), then the
proposals. The CLI runs it once; the service on a schedule.

Every reconcile holds the bot's merge requests against the manifests and the build records
(`bot.app.proposals.converge`), whether or not the pass rebuilt anything, so a proposal step
that did not finish (the process killed, the forge down) is completed by the next one. What
the proposal step worked out is written into the records with one more push of the notes
ref only (no branch moves); a failed or lost push only costs the next pass a search.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from bot.app.notify import Notifier
from bot.app.pass_ import PassOutcome, TreePass, check_runs, run_pass
from bot.app.proposals import converge
from bot.app.wiring import DEFAULT, Adapters
from bot.config import Config
from bot.core.ports import NoProgress, Progress
from bot.core.record import BuildRecord, note_text
from bot.core.refs import WritableRefs
from bot.core.reports import CheckRun, NotificationsReport, PassReport, ProposalAction
from bot.errors import XsabotError
from bot.git.publish import RefUpdate, notes_commit, read_note
from bot.git.workrepo import NOTES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconciled:
    outcome: PassOutcome
    proposals: list[ProposalAction]
    errors: list[str]  # what kept proposals from being made; the branches are published
    notifications: NotificationsReport | None = None  # with `notify:` channels only
    search_checks: tuple[CheckRun, ...] = ()  # the checks the proposal step ran

    @property
    def report(self) -> PassReport:
        """The pass's report with what was done to the proposals, and what kept any from
        being made among its errors; and the notifications, when any channel is configured."""
        report = self.outcome.report
        update: dict[str, object] = {
            "proposals": tuple(self.proposals),
            "errors": (*report.errors, *self.errors),
            "search_checks": self.search_checks,
        }
        if self.notifications is not None:
            update["notifications"] = self.notifications
        return report.model_copy(update=update)


def reconcile(
    config: Config, progress: Progress | None = None, adapters: Adapters = DEFAULT
) -> Reconciled:
    progress = progress or NoProgress()
    # Notifications are staged into each tree's push and sent after the proposals.
    notifier = Notifier(config, adapters) if config.notify.channels else None
    stage = notifier.stage if notifier else None
    outcome = run_pass(config, publish=True, progress=progress, adapters=adapters, stage=stage)
    actions: list[ProposalAction] = []
    errors: list[str] = []
    gated = {tree: len(check_runs(t.check)) for tree, t in outcome.trees.items()}
    try:
        converged = converge(config, outcome, progress, adapters)
    except XsabotError as exc:  # no forge: branches are published, proposals are not
        errors.append(f"proposals: {exc}")
    else:
        actions, errors = converged.actions, list(converged.errors)
        for tree, records in sorted(converged.records.items()):
            problem = _record_proposals(config, tree, outcome.trees[tree], records, adapters)
            if problem:
                log.warning("tree %s: %s", tree, problem)
    errors += [f"proposal {a.branch}: {a.error}" for a in actions if a.error]
    counts = None
    if notifier is not None:
        notifier.observe(outcome)
        counts = notifier.deliver(actions)
    searches = tuple(
        run
        for tree, t in sorted(outcome.trees.items())
        for run in check_runs(t.check, since=gated[tree])
    )
    return Reconciled(outcome, actions, errors, counts, searches)


def _record_proposals(
    config: Config,
    tree: str,
    tree_pass: TreePass,
    records: dict[str, tuple[str, BuildRecord]],
    adapters: Adapters,
) -> str | None:
    """Write the proposals worked out into the build records: one notes-only push. Returns
    why it failed, if it did; then the next pass works them out again."""
    work, store = tree_pass.work, tree_pass.store
    by_tip: dict[str, list[BuildRecord]] = defaultdict(list)
    for tip, record in records.values():
        by_tip[tip].append(record)
    old = tree_pass.notes
    notes = {tip: note_text(read_note(work, tip, old), recs) for tip, recs in by_tip.items()}
    ident = config.identity
    new = notes_commit(store, old=old, notes=notes, name=ident.name, email=ident.email)
    try:
        store.flush()
        result = adapters.push(
            work,
            config.mirror_of(tree),
            [RefUpdate(NOTES, new, old)],
            writable=WritableRefs.of(config.namespace, []),
        )
    except XsabotError as exc:
        return f"the proposals were not recorded: {exc}"
    if not result.ok:
        return f"the proposals were not recorded: {result.message}"
    tree_pass.notes = new
    return None
