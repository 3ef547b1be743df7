"""Commit objects as bytes: parse a source commit, write the bot's deterministic commits.

A pick keeps the source's author line byte for byte (name, email, date and zone), takes the
bot's identity as committer with the source's committer date, and appends the provenance
line. Nothing depends on the clock or the machine, so the same inputs give the same IDs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROVENANCE = "(cherry picked from commit {sha})"
_TRAILER = re.compile(
    rb"^([A-Za-z0-9-]+( [a-z]+)?: |\(cherry picked from commit |master (commit|date): )"
)


@dataclass(frozen=True)
class RawCommit:
    tree: str
    parents: tuple[str, ...]
    author: bytes  # "Name <email> 1700000000 +0100", verbatim
    committer: bytes
    encoding: bytes | None
    message: bytes

    @property
    def subject(self) -> str:
        return self.message.split(b"\n", 1)[0].decode("utf-8", "replace")

    @property
    def committer_date(self) -> bytes:
        """The "<seconds> <zone>" tail of the committer line."""
        return b" ".join(self.committer.rsplit(b" ", 2)[-2:])

    @property
    def committer_seconds(self) -> int:
        return int(self.committer.rsplit(b" ", 2)[-2])


def parse_commit(raw: bytes) -> RawCommit:
    head, _, message = raw.partition(b"\n\n")
    tree = ""
    parents: list[str] = []
    author = committer = b""
    encoding = None
    for line in head.split(b"\n"):
        if line.startswith(b" "):  # continuation of gpgsig/mergetag: dropped
            continue
        key, _, value = line.partition(b" ")
        if key == b"tree":
            tree = value.decode()
        elif key == b"parent":
            parents.append(value.decode())
        elif key == b"author":
            author = value
        elif key == b"committer":
            committer = value
        elif key == b"encoding":
            encoding = value
    return RawCommit(tree, tuple(parents), author, committer, encoding, message)


def identity_line(name: str, email: str, date: bytes) -> bytes:
    return b"%s <%s> %s" % (name.encode(), email.encode(), date)


def with_provenance(message: bytes, line: str) -> bytes:
    """Append `line` the way `git cherry-pick -x` does: into a closing trailer block, if any."""
    body = message.rstrip()
    last_paragraph = body.rsplit(b"\n\n", 1)[-1]
    in_trailers = bool(last_paragraph) and all(
        _TRAILER.match(row) for row in last_paragraph.split(b"\n")
    )
    sep = b"\n" if in_trailers and b"\n\n" in body else b"\n\n"
    return body + sep + line.encode() + b"\n"


def format_commit(
    *,
    tree: str,
    parents: tuple[str, ...] | list[str],
    author: bytes,
    committer: bytes,
    message: bytes,
    encoding: bytes | None = None,
) -> bytes:
    lines = [b"tree " + tree.encode()]
    lines += [b"parent " + p.encode() for p in parents]
    lines += [b"author " + author, b"committer " + committer]
    if encoding is not None:
        lines.append(b"encoding " + encoding)
    return b"\n".join(lines) + b"\n\n" + message


def pick_commit(
    source_sha: str, source: RawCommit, *, tree: str, parent: str, name: str, email: str
) -> bytes:
    """The deterministic commit for a pick of `source` onto `parent` with result `tree`."""
    return format_commit(
        tree=tree,
        parents=(parent,),
        author=source.author,
        committer=identity_line(name, email, source.committer_date),
        message=with_provenance(source.message, PROVENANCE.format(sha=source_sha)),
        encoding=source.encoding,
    )
