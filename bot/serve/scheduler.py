"""When passes run: on an interval (with jitter) and when a webhook asks, one at a time.

An apscheduler `BackgroundScheduler` runs two jobs, both `max_instances=1` and coalescing:
the periodic pass, and a one-off pass a webhook asks for, started `hook_delay` seconds after
the first hook so that a burst (a push, its tag and its merge request arrive together)
becomes one pass. A hook that comes while a pass runs marks "run again once after". The
periodic pass still runs, so a lost hook never leaves a branch stale for longer than the
interval.

The pass itself is the application layer's (`bot.app.reconcile.reconcile`); this module
only calls it, records how it ended, and reads the status afterwards (from the same thread,
so a status read never races a pass on the work repositories).

Stopping (`stop()`, on SIGTERM): no new pass starts, and the running one stops at its next
step: before it builds another branch or pushes, never in the middle of its one atomic push.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from apscheduler.schedulers.background import BackgroundScheduler

from bot.core.ports import Progress
from bot.core.reports import PassReport, StatusReport
from bot.redact import redact
from bot.serve import history
from bot.serve.history import PassRecord, Result, ServiceState
from bot.serve.metrics import Metrics, notification_counts

log = logging.getLogger(__name__)

PassFunction = Callable[[Progress], PassReport]
StatusFunction = Callable[[], StatusReport]
Trigger = Literal["schedule", "hook", "start"]


class Abandoned(BaseException):  # like KeyboardInterrupt: not an error to catch
    """Raised at a pass's next step once the service stops: nothing after it runs."""


class _StoppableProgress:
    """The pass's progress: logs each step, and ends the pass at a step once stopping."""

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping

    def step(self, message: str, of: tuple[int, int] | None = None) -> AbstractContextManager[None]:
        if self._stopping.is_set():
            raise Abandoned(message)
        log.info("%s%s", message, f" ({of[0]}/{of[1]})" if of else "")
        return nullcontext()


class Service:
    """The pass runner and what it keeps; the web app reads it, the scheduler drives it."""

    def __init__(
        self,
        run_pass: PassFunction,
        read_status: StatusFunction,
        state_dir: Path,
        *,
        interval: float = 900.0,
        jitter: float = 60.0,
        hook_delay: float = 5.0,
    ) -> None:
        self._run_pass = run_pass
        self._read_status = read_status
        self.interval, self.jitter, self.hook_delay = interval, jitter, hook_delay
        self.metrics = Metrics()
        self._path = history.state_file(state_dir)
        self.state: ServiceState = history.load(self._path)
        if self.state.status is not None:
            self.metrics.record_status(self.state.status, self.state.last_success)
        self.ready = threading.Event()  # a pass has completed since start
        self.stopping = threading.Event()
        self.running_since: datetime | None = None
        self._lock = threading.Lock()
        self._running = False
        self._requested: Trigger | None = None  # a pass asked for and not started yet
        self._ticked = False  # the periodic job ran once (the pass at start)
        self._scheduler = BackgroundScheduler(timezone=UTC)

    # -- scheduling ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler: a first pass now, then every `interval` seconds (± jitter)."""
        self._scheduler.add_job(
            self._periodic,
            "interval",
            seconds=self.interval,
            jitter=self.jitter or None,
            id="periodic",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self._scheduler.start()

    def request(self) -> bool:
        """A webhook asks for a pass. True when this starts a new request, False when it joins
        one already waiting (or the pass running, which then runs again once after)."""
        with self._lock:
            if self.stopping.is_set():
                return False
            joined = self._requested is not None
            self._requested = "hook"
            if joined or self._running:
                return False
        self._scheduler.add_job(
            self._drain,
            "date",
            run_date=datetime.now(UTC) + timedelta(seconds=self.hook_delay),
            id="requested",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        return True

    def stop(self) -> None:
        """Start no new pass; let the running one stop at its next step; wait for it."""
        self.stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def _periodic(self) -> None:
        with self._lock:
            if self._running:  # a pass is running now: it is as fresh as this one would be
                return
            self._requested = "schedule" if self._ticked else "start"
            self._ticked = True
        self._drain()

    def _drain(self) -> None:
        """Run passes while one is requested; only one thread runs passes at a time."""
        with self._lock:
            if self._running or self._requested is None:
                return
            self._running = True
        try:
            while True:
                with self._lock:
                    trigger, self._requested = self._requested, None
                    if trigger is None or self.stopping.is_set():
                        return
                self._one_pass(trigger)
        finally:
            with self._lock:
                self._running = False

    # -- one pass -----------------------------------------------------------------------------

    def _one_pass(self, trigger: Trigger) -> None:
        started = datetime.now(UTC)
        self.running_since = started
        clock = time.monotonic()
        report: PassReport | None = None
        errors: tuple[str, ...] = ()
        result: Result
        try:
            report = self._run_pass(_StoppableProgress(self.stopping))
            result = _result_of(report)
            errors = report.errors
        except Abandoned as exc:
            result, errors = "abandoned", (f"the service stopped before: {exc}",)
        except Exception as exc:  # a bug or an unexpected failure: the service goes on
            log.exception("pass failed")
            result, errors = "crashed", (redact(f"{type(exc).__name__}: {exc}"),)
        seconds = time.monotonic() - clock
        status = self._status() if result != "abandoned" else None
        sent, failed = notification_counts(report) if report else (0, 0)
        record = PassRecord(
            started=started,
            seconds=round(seconds, 3),
            trigger=trigger,
            result=result,
            exit_status=report.exit_status if report else None,
            errors=tuple(redact(e) for e in errors),
            notifications_sent=sent,
            notifications_failed=failed,
        )
        ok = [b.branch for b in report.branches if b.branch and b.ok] if report else []
        self.state = self.state.with_pass(record, status, ok)
        try:
            history.save(self._path, self.state)
        except OSError as exc:
            log.warning("%s: the pass history was not saved: %s", self._path, exc)
        self.metrics.record_pass(result, seconds, report)
        if status is not None:
            self.metrics.record_status(status, self.state.last_success)
        self.running_since = None
        if result not in ("crashed", "abandoned"):
            self.ready.set()
        log.info("pass (%s): %s in %.1f s", trigger, result, seconds)

    def _status(self) -> StatusReport | None:
        try:
            return self._read_status()
        except Exception as exc:
            log.warning("status not read after the pass: %s", redact(str(exc)))
            return None

    @property
    def last_pass(self) -> PassRecord | None:
        return self.state.passes[-1] if self.state.passes else None


def _result_of(report: PassReport) -> Result:
    return {0: "ok", 1: "blocked"}.get(report.exit_status, "error")  # type: ignore[return-value]
