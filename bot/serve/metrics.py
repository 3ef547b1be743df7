"""The service's Prometheus metrics, in a registry of its own (`GET /metrics`).

Counters count what the service saw since it started; gauges say where each branch stands
after the last pass (and are set again from the kept state on a restart).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.core.reports import PassReport, StatusReport


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.passes = Counter("xsabot_passes", "Passes run, by result", ["result"], registry=r)
        self.pass_seconds = Histogram(
            "xsabot_pass_duration_seconds",
            "How long a pass took",
            buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200),
            registry=r,
        )
        self.picks = Counter("xsabot_picks", "XSAs applied by fresh builds", registry=r)
        self.conflicts = Counter(
            "xsabot_conflicts", "XSAs a fresh build found blocked by a conflict", registry=r
        )
        self.blocked = Gauge(
            "xsabot_blocked_xsas", "XSAs blocked on a branch", ["branch"], registry=r
        )
        self.proposals = Gauge("xsabot_open_proposals", "The bot's open merge requests", registry=r)
        self.notifications = Counter(
            "xsabot_notifications", "Notifications by outcome", ["outcome"], registry=r
        )
        self.last_success = Gauge(
            "xsabot_last_success_timestamp_seconds",
            "When a pass last left the branch clean (Unix time)",
            ["branch"],
            registry=r,
        )
        self.hooks = Counter(
            "xsabot_webhooks",
            "Webhooks received, by forge and outcome",
            ["forge", "outcome"],
            registry=r,
        )
        for outcome in ("sent", "failed"):
            self.notifications.labels(outcome)

    def record_pass(self, result: str, seconds: float, report: PassReport | None) -> None:
        self.passes.labels(result).inc()
        self.pass_seconds.observe(seconds)
        if report is None:
            return
        for branch in report.branches:
            if branch.rebuilt:
                self.picks.inc(len(branch.applied))
                self.conflicts.inc(sum(1 for b in branch.blocked if b.reason == "conflict"))
        sent, failed = notification_counts(report)
        self.notifications.labels("sent").inc(sent)
        self.notifications.labels("failed").inc(failed)

    def record_status(self, status: StatusReport, last_success: dict[str, float]) -> None:
        """Set the per-branch gauges from the status: a branch no manifest names any more
        leaves them."""
        self.blocked.clear()
        self.last_success.clear()
        for branch in status.branches:
            if branch.branch:
                self.blocked.labels(branch.branch).set(len(branch.blocked))
        self.proposals.set(len(status.proposals))
        for name in {b.branch for b in status.branches if b.branch} & last_success.keys():
            self.last_success.labels(name).set(last_success[name])

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def notification_counts(report: PassReport) -> tuple[int, int]:
    """(sent, failed) from the report's `notifications`, when the pass reports them."""
    data: Any = report.to_json().get("notifications")
    if not isinstance(data, dict):
        return 0, 0

    def count(key: str) -> int:
        value = data.get(key, 0)
        if isinstance(value, list | tuple):
            return len(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return count("sent"), count("failed")
