"""The one redaction point: what must never appear in a message, a log line or an error.

Secrets are registered as soon as they are read (`register_secret`): the forge token, every
secret-looking variable removed from the environment at start-up, the password of a URL in
the config (`bot.forges.credentials`). Then:

- `redact` hides them and the user part of any URL (`https://user:pass@host` ->
  `https://***@host`): for text meant for people (stdout, stderr, logs, errors, merge requests).
- `redact_secrets` / `redact_secret_bytes` hide only the secrets: for what must otherwise stay
  byte for byte (the objects the bot writes into the mirror, the check's output).

Where text leaves the process, it goes through one of them: the CLI's stdout and stderr
(`redacting_streams`, which the logs write to as well), the objects the bot writes
(`bot.git.objects.ObjectStore`), every forge's text (`bot.forges.redacting.RedactingForge`),
the check's output (`bot.check.runner`), git's errors (`bot.git.runner`), the forges' HTTP
errors (`bot.forges.http`), crash files (`bot.cli.main`).

Redaction is a second line: a secret printed transformed (reversed, encoded) is not
recognised. The first line keeps secrets out of the check's reach (see `bot.check.runner`).
Files that hold secrets are registered too (`register_secret_file`), so the check's sandbox
hides them.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

MASK = "***"
# Shorter values are not secrets anyone issues (tokens are 20 characters and more), and
# hiding them would mangle ordinary text: "1" or "true" from an environment variable.
MIN_LENGTH = 8

# Names of environment variables that hold secrets, whatever the config says: CI job tokens,
# forge tokens, passwords, keys. Matched anywhere in the name, case-insensitively.
SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|API_KEY|ACCESS_KEY|CREDENTIAL|_JWT", re.IGNORECASE
)

_secrets: set[str] = set()
_secret_bytes: list[bytes] = []  # the same, encoded, longest first
_secret_files: set[Path] = set()
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def register_secret(value: str) -> None:
    """Make the redaction functions hide `value` from now on (tokens read from env or files)."""
    value = value.strip()
    if len(value) >= MIN_LENGTH and value not in _secrets:
        _secrets.add(value)
        _secret_bytes[:] = sorted((s.encode() for s in _secrets), key=len, reverse=True)


def register_secret_file(path: Path) -> None:
    """A file that holds a secret: the check's sandbox puts an empty file in its place."""
    _secret_files.add(path.expanduser().absolute())


def secret_files() -> frozenset[Path]:
    return frozenset(_secret_files)


def has_secrets() -> bool:
    return bool(_secrets)


def redact_secrets(text: str) -> str:
    """`text` with every registered secret replaced by `***`; nothing else changes."""
    # Longest first: a secret that contains another is hidden whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_secret_bytes(data: bytes) -> bytes:
    """`redact_secrets` for bytes (an object, a line of output); returns `data` itself when
    there is nothing to hide, which is almost always, and cheap to find out."""
    for secret in _secret_bytes:
        if secret in data:
            data = data.replace(secret, MASK.encode())
    return data


def redact(text: str) -> str:
    """`text` without secrets and without the user part of any URL: for people to read."""
    return redact_secrets(_USERINFO.sub(r"\g<scheme>***@", text))


class RedactingStream:
    """A text stream that passes what is written through `redact`, a line at a time (a
    secret written in two pieces is still seen whole); `flush` writes a partial line."""

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        end = max(self._pending.rfind("\n"), self._pending.rfind("\r"))
        if end >= 0:
            done, self._pending = self._pending[: end + 1], self._pending[end + 1 :]
            self.wrapped.write(redact(done))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            self.wrapped.write(redact(self._pending))
            self._pending = ""
        self.wrapped.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        if name == "buffer":  # bytes written there would pass unredacted
            raise AttributeError("a redacting stream has no binary buffer")
        return getattr(self.wrapped, name)


@contextlib.contextmanager
def redacting_streams() -> Iterator[None]:
    """Route `sys.stdout` and `sys.stderr` through `redact` for the duration (the CLI's
    output, its logs and any library's prints); what is pending is flushed at the end."""
    saved = sys.stdout, sys.stderr
    out, err = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    sys.stdout, sys.stderr = out, err
    try:
        yield
    finally:
        for stream in (out, err):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved
