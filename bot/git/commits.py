"""Commit objects as bytes: parse a source commit, write the bot's deterministic commits.

A pick keeps the source's author line byte for byte (name, email, date and zone), takes the
bot's identity as committer with the source's committer date, and appends the provenance
line. Nothing depends on the clock or the machine, so the same inputs give the same IDs.
"""

from __future__ import annotations

from dataclasses import dataclass

PROVENANCE = "(cherry picked from commit {sha})"


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


_GIT_GENERATED = (b"Signed-off-by: ", b"(cherry picked from commit ")
_SPACE = b" \t\n\v\f\r"
_TOKEN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")


def _is_blank(line: bytes) -> bool:
    return not line.strip(_SPACE)


def _has_separator(line: bytes) -> bool:
    """A `token: value` line as git's trailer parser sees it (token: ASCII alnum and '-')."""
    spaced = False
    for i, c in enumerate(line):
        if c == 0x3A:  # ':'
            return i >= 1
        if not spaced and c in _TOKEN:
            continue
        if i and c in b" \t":
            spaced = True
            continue
        return False
    return False


def _ends_with_trailers(message: bytes) -> bool:
    """Whether git's sequencer sees a trailer block at the end of `message` (trailer.c:
    a last paragraph of only trailers, or with a git-generated one and >= 25% trailers)."""
    lines = message.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    while lines and (lines[-1].startswith(b"#") or _is_blank(lines[-1])):
        lines.pop()  # trailing comments and blank lines are not part of the message
    title_end = next(
        (i for i, line in enumerate(lines) if not line.startswith(b"#") and _is_blank(line)),
        len(lines),
    )
    trailers = others = continuations = 0
    recognized = False
    for line in reversed(lines[title_end + 1 :]):
        if line.startswith(b"#"):
            others += continuations
            continuations = 0
        elif _is_blank(line):
            break
        elif line.startswith(_GIT_GENERATED):
            trailers += 1
            continuations = 0
            recognized = True
        elif _has_separator(line) and line[:1] not in b" \t":
            trailers += 1
            continuations = 0
        elif line[:1] in (b" ", b"\t"):
            continuations += 1
        else:
            others += 1 + continuations
            continuations = 0
    else:
        if title_end >= len(lines):
            return False
    others += continuations
    return bool(trailers) and (not others or (recognized and trailers * 3 >= others))


def with_provenance(message: bytes, line: str) -> bytes:
    """Append `line` exactly as `git cherry-pick -x` does: into a closing trailer block,
    else after a blank line; so a pick equals plain git's given the same committer."""
    if not message.endswith(b"\n"):
        message += b"\n"
    sep = b"" if _ends_with_trailers(message) else b"\n"
    return message + sep + line.encode() + b"\n"


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
