"""The forges' shared HTTP policy: bounded retries, and error conversion at the boundary.

The GitLab and GitHub clients are built with their own retries and throttling off, so this is
the one place that decides what to wait for. Each public forge operation runs whole through
`RetryPolicy.run`; the operations are written find-then-act, so running one again after a
failure halfway does not duplicate what the first try already did.

What is retried: server errors (5xx) and network failures, a bounded number of times with a
doubling pause; rate limits (429, or a 403 carrying rate-limit headers), waiting what the
forge asks for as long as that is not longer than `max_wait`. Everything else is a 4xx that
will not change by asking again, and becomes a `ForgeError` at once.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from bot.errors import (
    ForgeConflict,
    ForgeError,
    ForgeNotFound,
    ForgePermission,
    ForgeRateLimited,
    ForgeTransient,
    XsabotError,
)
from bot.redact import redact

log = logging.getLogger("bot.forges")
T = TypeVar("T")
Verdict = Literal["transient", "rate-limited", "final"]


@dataclass(frozen=True)
class HttpFailure:
    """A failed forge request in library-neutral terms (`status` None: no response at all)."""

    status: int | None
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


# Turns a library's exception into an HttpFailure; None means "not a forge failure" (our own
# errors, programming errors), which `run` lets through untouched.
Classify = Callable[[BaseException], HttpFailure | None]


def verdict(failure: HttpFailure) -> Verdict:
    status = failure.status
    if status is None or status >= 500:
        return "transient"
    if status == 429:
        return "rate-limited"
    # GitHub answers its primary and secondary rate limits with 403; only the headers (or the
    # wording) tell them from a real permission problem.
    if status == 403 and (
        failure.header("retry-after") is not None
        or failure.header("x-ratelimit-remaining") == "0"
        or "rate limit" in failure.message.lower()
    ):
        return "rate-limited"
    return "final"


def error_for(what: str, failure: HttpFailure) -> ForgeError:
    """The bot's error for a failure that will not be retried (or no longer)."""
    status, message = failure.status, redact(failure.message.strip() or "no message")
    if status == 401:
        return ForgePermission(
            f"{what}: the forge rejected the token (401: {message}); check the token named by "
            "forge.token_env or forge.token_file"
        )
    if status == 403:
        return ForgePermission(
            f"{what}: permission denied (403: {message}); the bot's token lacks the right "
            "for this on the project, retrying will not help"
        )
    if status == 404:
        return ForgeNotFound(f"{what}: not found (404: {message})")
    if status in (409, 422):
        return ForgeConflict(f"{what}: refused ({status}: {message})")
    if status is None:
        return ForgeTransient(f"{what}: no answer from the forge ({message})")
    if status >= 500:
        return ForgeTransient(f"{what}: server error ({status}: {message})")
    return ForgeError(f"{what}: {status}: {message}")


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to insist. `sleep` and `clock` are injectable for tests."""

    attempts: int = 4
    rate_limit_attempts: int = 4
    max_wait: float = 60.0
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time

    def run(self, what: str, operation: Callable[[], T], classify: Classify) -> T:
        """Run `operation`, retrying it whole as the failures allow; raise a ForgeError."""
        transient = limited = 0
        while True:
            try:
                return operation()
            except XsabotError:
                raise
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
            # Outside the except block on purpose: the library's exception (and the request
            # it describes) must not ride along as __context__ of the bot's error.
            kind = verdict(failure)
            if kind == "final":
                raise error_for(what, failure)
            if kind == "transient":
                transient += 1
                if transient >= self.attempts:
                    error = error_for(what, failure)
                    raise type(error)(f"{error} after {transient} attempts")
                wait = min(self.backoff * 2.0 ** (transient - 1), self.max_wait)
            else:
                limited += 1
                wait = self.rate_limit_wait(failure, limited)
                if wait > self.max_wait or limited >= self.rate_limit_attempts:
                    raise ForgeRateLimited(
                        f"{what}: still rate limited after {limited} attempts (the forge asks "
                        f"to wait {wait:.0f}s, at most {self.max_wait:.0f}s is waited)"
                    )
            log.warning(
                "%s: %s, retrying in %.1fs",
                what,
                redact(f"{failure.status or 'no answer'} {failure.message}".strip()),
                wait,
            )
            self.sleep(wait)

    def rate_limit_wait(self, failure: HttpFailure, attempt: int) -> float:
        """Seconds the forge asks us to wait: Retry-After first, then the reset time."""
        retry_after = failure.header("retry-after")
        if retry_after is not None:
            seconds = _seconds_from_retry_after(retry_after, self.clock())
            if seconds is not None:
                return seconds
        remaining = failure.header("ratelimit-remaining") or failure.header("x-ratelimit-remaining")
        reset = failure.header("ratelimit-reset") or failure.header("x-ratelimit-reset")
        if remaining == "0" and reset is not None and reset.strip().isdigit():
            return max(0.0, float(reset) - self.clock())
        return min(self.backoff * 2.0 ** (attempt - 1), self.max_wait)


def _seconds_from_retry_after(value: str, now: float) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - now)
