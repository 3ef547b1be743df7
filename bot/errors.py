"""The bot's one error hierarchy; the CLI maps each class to an exit status.

Library exceptions (GitPython, pygit2, forge clients) are converted at the adapter boundary;
nothing outside an adapter catches a library's own exception type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What must never reach a terminal, a log line or an MR comment raw: control characters (a
# newline would forge a second problem line, ESC drives the terminal), the Unicode line and
# paragraph separators, and lone surrogates (a file name that is not UTF-8; printing one raises).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with what `_UNPRINTABLE` matches written as escapes (`\\n`, `\\x1b`, `\\udcff`)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class XsabotError(Exception):
    """Base class. `exit_status` is what the CLI returns when this reaches the top."""

    exit_status = 2


class UsageError(XsabotError):
    """The command line or config asks for something impossible (exit 2)."""


class SetupError(XsabotError):
    """The environment is not usable: missing repository, git too old, unreadable file (exit 2)."""


class GitError(SetupError):
    """A git command failed or timed out. The message has URLs and tokens redacted."""


class MergeEngineError(GitError):
    """libgit2 failed to merge a file or to score a rename (an error, not a conflict)."""


@dataclass(frozen=True)
class Problem:
    """One finding about an input file, reported as `path:line:col: field: message`."""

    path: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        # One problem, one line, whatever the input put in a key, a value or a file name.
        field = f" {printable(self.field)}:" if self.field else ""
        return f"{printable(self.path)}:{self.line}:{self.col}:{field} {printable(self.message)}"


class InvalidInput(XsabotError):
    """An input file (manifest, config) is invalid; carries every problem found in it (exit 1)."""

    exit_status = 1

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InvalidConfig(UsageError):
    """The bot config is invalid; carries every problem found in it (exit 2, like any usage
    error: nothing ran)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(str(p) for p in problems))


class ForgeError(XsabotError):
    """A forge (GitLab, GitHub, local) refused or failed a request. Messages carry no tokens."""


class ForgeNotFound(ForgeError):
    """The project, merge request or comment does not exist (or is not visible to the bot)."""


class ForgeConflict(ForgeError):
    """The forge says the object already exists or changed under us (409, 422)."""


class ForgePermission(ForgeError):
    """The token lacks a permission (401, 403 other than rate limits); retrying will not help."""


class ForgeRateLimited(ForgeError):
    """Still rate limited after the bounded wait."""


class ForgeTransient(ForgeError):
    """A server error or network failure that persisted through the bounded retries."""
