"""`reconcile`: the bot's whole job, once: a pass (fetch, build, check, publish), then the
proposals for what it found blocked. The CLI runs it once; the service on a schedule."""

from __future__ import annotations

from dataclasses import dataclass

from bot.app.notify import Notifier
from bot.app.pass_ import PassOutcome, run_pass
from bot.app.proposals import propose
from bot.app.wiring import DEFAULT, Adapters
from bot.config import Config
from bot.core.ports import NoProgress, Progress
from bot.core.reports import NotificationsReport, PassReport, ProposalAction
from bot.errors import XsabotError


@dataclass(frozen=True)
class Reconciled:
    outcome: PassOutcome
    proposals: list[ProposalAction]
    errors: list[str]  # what kept proposals from being made; the branches are published
    notifications: NotificationsReport | None = None  # with `notify:` channels only

    @property
    def report(self) -> PassReport:
        """The pass's report with what was done to the proposals, and what kept any from
        being made among its errors; and the notifications, when any channel is configured."""
        report = self.outcome.report
        update: dict[str, object] = {
            "proposals": tuple(self.proposals),
            "errors": (*report.errors, *self.errors),
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
    # Only a fresh build tells anything new about proposals; a no-op pass skips the forge.
    if any(t.results for t in outcome.trees.values()):
        try:
            actions = propose(config, outcome, progress, adapters)
        except XsabotError as exc:  # no forge: branches are published, proposals are not
            errors.append(f"proposals: {exc}")
    errors += [f"proposal {a.branch}: {a.error}" for a in actions if a.error]
    counts = None
    if notifier is not None:
        notifier.observe(outcome)
        counts = notifier.deliver(actions)
    return Reconciled(outcome, actions, errors, counts)
