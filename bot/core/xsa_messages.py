"""What a commit message on a stable branch says: which XSAs it fixes, where it came from.

Xen's security team marks every fix commit on a stable branch with one statement in its
message ("This is XSA-479 / CVE-2026-23553.", "This is part of XSA-456.", "Everything together
is XSA-501."). Commits that merely talk about an advisory ("This is a follow-up to XSA-385",
"fix XSA-417 patch", reverts, prose) are not fixes: a manifest must not pick them up as such.

Pure: text in, facts out. The importer and the prerequisite finder read messages through here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CVE = r"CVE-\d{4}-[0-9A-Za-z]+"  # "CVE-2023-xxxx" placeholders exist in real messages
_CVES = rf"{_CVE}(?:\s*(?:/|,|\+|and)\s*{_CVE})*"
# One fix statement, at the start of a line: an indented statement is a quote of another
# commit's message (follow-ups quote the fix they amend), not this commit's own claim.
_FIX_STATEMENT = re.compile(
    rf"""
    ^(?: This\s+(?:patch\s+)?is\s+
       | Everything\s+together\s+is\s+
       | This\s+(?=CVE-) )                 # "This CVE-2025-27466 / XSA-467." (sic, in 4.17+)
    (?:a\s+security\s+(?:issue|problem|vulnerability),\s+)?
    (?:part\s+of\s+(?:the\s+fix\s+to\s+a\s+security\s+issue,\s+)?)?
    (?:{_CVES}\s*[/,]\s*(?:part\s+of\s+)?)?
    XSA-(?P<xsa>\d+)\b
    (?P<more>(?:\s*(?:/|,|\+|and)\s*XSA-\d+\b)*)
    """,
    re.MULTILINE | re.VERBOSE,
)
_XSA_NUMBER = re.compile(r"XSA-(\d+)")
_ORIGIN = re.compile(
    r"^(?:master\s+commit:\s*(?P<master>[0-9a-f]{7,40})\b"
    r"|\(cherry\s+picked\s+from\s+commit\s+(?P<picked>[0-9a-f]{7,40})\))",
    re.MULTILINE,
)
_SUPPORT_UNTIL = re.compile(r"^\s*Security-Support-Until:\s*(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class XsaCommit:
    """A fix commit on a source branch. `origin`: the master commit it was backported from."""

    sha: str
    xsas: tuple[int, ...]
    subject: str
    origin: str | None


def xsa_numbers(message: str) -> tuple[int, ...]:
    """The XSAs a commit message says the commit fixes, first named first; () if none.

    A revert counts only by its own statement: XSA-425 is a revert of a buggy change.
    """
    found: list[int] = []
    for match in _FIX_STATEMENT.finditer(message):
        numbers = [int(match["xsa"]), *(int(n) for n in _XSA_NUMBER.findall(match["more"]))]
        found.extend(n for n in numbers if n not in found)
    return tuple(found)


def origin_of(message: str) -> str | None:
    """The commit a backport names as its origin (`master commit:` or `cherry picked from`)."""
    match = _ORIGIN.search(message)
    if match is None:
        return None
    return match["master"] or match["picked"]


def subject_of(message: str) -> str:
    """The subject as git shows it (`%s`): the first paragraph on one line."""
    paragraph = message.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def xsa_commit(sha: str, message: str) -> XsaCommit | None:
    """The fix commit `sha` is, by its message; None if the message states no fix."""
    xsas = xsa_numbers(message)
    if not xsas:
        return None
    return XsaCommit(sha, xsas, subject_of(message), origin_of(message))


def support_until(support_md: str) -> str | None:
    """`Security-Support-Until` from the text of a release line's SUPPORT.md, if it says."""
    match = _SUPPORT_UNTIL.search(support_md)
    return match[1] if match else None
