"""The one redaction point: what must never appear in a message, a log line or an error.

Tokens are registered as soon as they are read (`register_secret`); `redact` hides them and
the user part of any URL (`https://user:pass@host` -> `https://***@host`). The git runner
passes every command line and error through it, and so do the forges' HTTP errors.
"""

from __future__ import annotations

import re

_secrets: set[str] = set()
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def register_secret(value: str) -> None:
    """Make `redact` hide `value` from now on (tokens read from env or files)."""
    if value:
        _secrets.add(value)


def redact(text: str) -> str:
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text
