"""Intake from a stable branch: which commits are XSA fixes, and a manifest that lists them.

Xen's security team marks every fix commit on a stable branch with one statement in its
message ("This is XSA-479 / CVE-2026-23553.", "This is part of XSA-456.", "Everything together
is XSA-501."). Commits that merely talk about an advisory ("This is a follow-up to XSA-385",
"fix XSA-417 patch", reverts, prose) are not fixes: a manifest must not pick them up as such.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import GitError, SetupError, UsageError
from bot.git.runner import git

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


def _rev(repo: Path | str, name: str) -> str | None:
    proc = git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"],
        cwd=repo,
        check=False,
    )
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def _check_repository(repo: Path | str) -> None:
    if not Path(repo).is_dir():
        raise SetupError(f"{repo}: no such directory")
    if git(["rev-parse", "--git-dir"], cwd=repo, check=False).returncode != 0:
        raise SetupError(f"{repo}: not a git repository")


def resolve_base(repo: Path | str, base: str) -> str:
    """The commit of the base tag (or any commit name); UsageError if the repo lacks it."""
    sha = (
        _rev(repo, f"refs/tags/{base}")
        or _rev(repo, f"refs/upstream/tags/{base}")  # the bot's work repository
        or _rev(repo, base)
    )
    if sha is None:
        raise UsageError(f"unknown base {base!r}: no such tag or commit in {repo}")
    return sha


def resolve_source(repo: Path | str, source: str) -> str:
    """The tip of the source branch, local or as `origin/<source>` in a plain clone."""
    for name in (
        f"refs/heads/{source}",
        f"refs/remotes/origin/{source}",
        f"refs/upstream/heads/{source}",  # the bot's work repository
    ):
        sha = _rev(repo, name)
        if sha is not None:
            return sha
    raise UsageError(f"unknown source {source!r}: no such branch in {repo}")


def _log(repo: Path | str, base_sha: str, source_sha: str) -> Iterable[tuple[str, str]]:
    # One git process for the whole range; records are NUL-separated because a message may
    # hold any other byte. First-parent: the stable branch's own line, oldest first.
    out = git(
        [
            "log",
            "--first-parent",
            "--reverse",
            "-z",
            "--format=%H%n%B",
            f"{base_sha}..{source_sha}",
            "--",
        ],
        cwd=repo,
    ).stdout.decode("utf-8", "replace")
    for record in out.split("\0"):
        if record:
            sha, _, message = record.partition("\n")
            yield sha, message


def find_xsa_commits(
    repo_path: Path | str, base: str, source: str
) -> list[tuple[int, list[XsaCommit]]]:
    """XSA fix commits in base..source, grouped by XSA.

    Groups come in the order of their first commit on `source`, commits in `source` order
    (oldest first, first parent). A commit naming several XSAs goes in the first one's group.
    """
    _check_repository(repo_path)
    base_sha = resolve_base(repo_path, base)
    source_sha = resolve_source(repo_path, source)
    groups: dict[int, list[XsaCommit]] = {}
    for sha, message in _log(repo_path, base_sha, source_sha):
        xsas = xsa_numbers(message)
        if xsas:
            commit = XsaCommit(sha, xsas, subject_of(message), origin_of(message))
            groups.setdefault(xsas[0], []).append(commit)
    return list(groups.items())


_SUPPORT_UNTIL = re.compile(r"^\s*Security-Support-Until:\s*(\S+)", re.MULTILINE)


def security_support_until(repo_path: Path | str, source: str) -> str | None:
    """`Security-Support-Until` from SUPPORT.md on the source branch, if it says."""
    try:
        tip = resolve_source(repo_path, source)
        text = git(["show", f"{tip}:SUPPORT.md"], cwd=repo_path).stdout.decode("utf-8", "replace")
    except (GitError, UsageError):
        return None
    match = _SUPPORT_UNTIL.search(text)
    return match[1] if match else None


# Plain YAML scalars that would not read back as the same string are quoted (JSON strings are
# valid YAML double-quoted scalars).
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9._/+-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(value: str) -> str:
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def _comment(text: str) -> str:
    return " ".join(text.split())


def render_manifest(
    *,
    tree: str,
    base: str,
    source: str,
    branch: str,
    groups: Sequence[tuple[int, Sequence[XsaCommit]]],
    command: str | None = None,
    source_tip: str | None = None,
    supported_until: str | None = None,
) -> str:
    """The manifest as YAML text for a volunteer to review: every commit with its subject.

    Byte-identical for the same inputs (no date, no tool version): regenerating and diffing
    shows exactly what changed upstream.
    """
    if command is None:
        tree_option = "" if tree == "xen" else f" --tree {tree}"
        command = (
            f"xsabot import stable --upstream {tree}=<{tree}.git>{tree_option}"
            f" --source {source} --base {base} --branch {branch}"
        )
    commits = sum(len(c) for _, c in groups)
    out = [
        "# Generated by:",
        f"#   {_comment(command)}",
        f"# {len(groups)} XSAs, {commits} fix commits in {base}..{source}"
        + ("." if source_tip is None else f"\n# ({source} at {source_tip})."),
        f"# XSAs in the order of their first commit on {source}; prerequisites come by review.",
    ]
    if supported_until:
        out.append(f"# {source} has security support until {_comment(supported_until)}.")
    out += [
        f"tree: {_scalar(tree)}",
        f"base: {_scalar(base)}",
        f"source: {_scalar(source)}",
        f"branch: {_scalar(branch)}",
    ]
    out.append("xsas:" if groups else "xsas: []")
    for number, group in groups:
        out += [f"  - xsa: {number}", "    commits:"]
        out += [f"      - {c.sha}  # {_comment(c.subject)}" for c in group]
    return "\n".join(out) + "\n"
