"""Notification channels: the `Channel` adapters of `bot.core.notify` (email, webhook, a
comment on the bot's merge request), and where their secrets come from.

A channel raises `NotifyFailed` (never a library's exception); the use case counts it and
retries later. Secrets come only from an environment variable or a file: start-up takes
the variables out of the environment (`bot.forges.credentials.take_configured_secrets`)
and registers them with `bot.redact`, and so does `read_secret`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot.errors import SetupError
from bot.forges.credentials import environment_value
from bot.redact import register_secret


class NotifyFailed(SetupError):
    """A channel could not deliver a message (the server is down, refused it)."""


def read_secret(
    what: str, env: str | None, file: str | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The secret in `env` (first) or `file`, registered for redaction; None when neither is
    configured. `what` names the config keys in errors (`notify.email.password`)."""
    if env:
        found = environment_value(env) if environ is None else environ.get(env)
        value = (found or "").strip()
        if value:
            register_secret(value)
            return value
        if not file:
            raise SetupError(f"{what}_env names {env}, which is not set or empty")
    if file:
        path = Path(file).expanduser()
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise SetupError(f"{what}_file {path}: cannot read: {exc.strerror}") from None
        if not value:
            raise SetupError(f"{what}_file {path} is empty")
        register_secret(value)
        return value
    return None
