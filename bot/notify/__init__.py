"""Notification channels: the `Channel` adapters of `bot.core.notify` (email, webhook, a
comment on the bot's merge request), and where their secrets come from.

A channel raises `NotifyFailed` (never a library's exception); the use case counts it and
retries later. Secrets come only from an environment variable or a file: start-up takes
the variables out of the environment (`bot.forges.credentials.take_configured_secrets`)
and `bot.forges.credentials.read_secret` reads them, registered with `bot.redact`.
"""

from __future__ import annotations

from bot.errors import SetupError


class NotifyFailed(SetupError):
    """A channel could not deliver a message (the server is down, refused it)."""
