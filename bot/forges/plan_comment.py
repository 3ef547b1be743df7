"""The bot's keyed comments on a merge request, and the plan posted as one of them.

A keyed comment starts with a hidden marker line naming its key; the forges find the bot's
comment by that marker and edit it instead of adding another (the Atlantis habit: one plan
comment per MR, always current). A plan longer than the forge's comment limit is split into
several keyed comments (`plan`, `plan-2`, ...), cut at line ends, never inside a code block
without closing and reopening it, so each part renders on its own.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from bot.core.ports import Forge

GITLAB_NOTE_LIMIT = 1_000_000
GITHUB_COMMENT_LIMIT = 65_536
PLAN_KEY = "plan"
_MARKER = "<!-- xsabot:comment={key} -->\n"
_MARKER_RE = re.compile(r"<!-- xsabot:comment=([A-Za-z0-9._-]+) -->\n")
_FENCE = "```"
_PART_KEY = re.compile(rf"^{PLAN_KEY}-(\d+)$")
# Room kept in each part for its "part i of n" header and a closing fence; splitting below
# this much room would make parts that are nearly all overhead.
_HEADER_ROOM = 48
_MIN_LIMIT = 256


def with_marker(key: str, body: str) -> str:
    """The comment text as posted for `key`."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", key):
        raise ValueError(f"comment key {key!r}: letters, digits, '.', '_' and '-' only")
    return _MARKER.format(key=key) + body


def key_of(body: str | None) -> str | None:
    """The key of a comment the bot posted, or None for anyone else's comment.

    The marker must open the comment: a human quoting the bot's comment starts with `>`,
    so a quote is never mistaken for the bot's own comment.
    """
    match = _MARKER_RE.match(body or "")
    return match.group(1) if match else None


@runtime_checkable
class KeyedComments(Protocol):
    """What a forge offers beyond `Forge.comment` so a shrinking plan leaves no stale parts."""

    def comment_keys(self, mr_id: int) -> list[str]: ...

    def delete_comment(self, mr_id: int, key: str) -> None: ...


def post_plan(forge: Forge, mr_id: int, text: str, *, limit: int | None = None) -> list[str]:
    """Post or edit in place the plan comment(s) of merge request `mr_id`; return their keys.

    `limit` is the forge's largest comment in characters (default: the forge's
    `comment_limit`, else GitHub's, the smaller of the two).
    """
    if limit is None:
        limit = int(getattr(forge, "comment_limit", GITHUB_COMMENT_LIMIT))
    room = limit - len(with_marker(f"{PLAN_KEY}-999", ""))
    parts = split_text(text, room - _HEADER_ROOM) if len(text) > room else [text]
    keys = [PLAN_KEY if i == 1 else f"{PLAN_KEY}-{i}" for i in range(1, len(parts) + 1)]
    for i, (key, part) in enumerate(zip(keys, parts, strict=True), start=1):
        header = f"*xsabot plan, part {i} of {len(parts)}*\n\n" if len(parts) > 1 else ""
        forge.comment(mr_id, key, header + part)
    if isinstance(forge, KeyedComments):
        for key in forge.comment_keys(mr_id):
            match = _PART_KEY.match(key)
            if match and int(match.group(1)) > len(parts):
                forge.delete_comment(mr_id, key)
    return keys


def split_text(text: str, room: int) -> list[str]:
    """Cut `text` into pieces of at most `room` characters, at line ends where possible."""
    if room < _MIN_LIMIT - _HEADER_ROOM:
        raise ValueError(f"a comment limit this small ({room} characters of room) cannot work")
    parts: list[str] = []
    current = ""
    fence: str | None = None  # the line that opened the code block we are in, if any
    for line in _lines(text, room // 3):
        after = _fence_after(fence, line)
        closing = len(_FENCE) + 1 if after else 0
        if current and len(current) + len(line) + closing > room:
            parts.append(current + (_FENCE + "\n" if fence else ""))
            current = fence or ""
        current += line
        fence = after
    if current or not parts:
        parts.append(current)
    return parts


def _lines(text: str, longest: int) -> list[str]:
    """Lines with their newline, any longer than `longest` hard-cut into pieces."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        while len(line) > longest:
            out.append(line[:longest] + "\n")
            line = line[longest:]
        out.append(line)
    return out


def _fence_after(fence: str | None, line: str) -> str | None:
    if not line.lstrip().startswith(_FENCE):
        return fence
    if fence is None:
        return line if line.endswith("\n") else line + "\n"
    return None
