"""What a failed build says is missing: the identifiers and headers in gcc, clang and ld errors.

Pure: text in, findings out. A fix that merges cleanly but does not build almost always uses
something a non-XSA commit brought in (a function, a macro, a type, a struct member, a header),
and the compiler names it; `bot.check.prereqs` looks for the commits that introduced those
names. Messages are matched in the C locale (the check runs with LANG=C) and with the curly
quotes gcc prints in UTF-8 locales, so a log pasted from elsewhere parses too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

Kind = str  # one of the keys of _MESSAGES, plus "missing-header"

_Q = r"[`'‘\"]"  # opening quotes: ld uses `...', gcc '...' or ‘...’, clang '...'
_E = r"['’\"]"  # closing quotes
_NAME = rf"{_Q}(?P<name>[^'’`\"]+){_E}"

# (kind, message pattern): searched in the message part of each diagnostic line.
_MESSAGES: tuple[tuple[Kind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("undeclared", rf"^{_NAME} undeclared\b"),  # gcc
        ("undeclared", rf"\buse of undeclared identifier {_NAME}"),  # clang
        ("implicit-function", rf"\bimplicit declaration of function {_NAME}"),  # gcc, clang<15
        ("implicit-function", rf"\bcall to undeclared function {_NAME}"),  # clang>=15
        ("unknown-type", rf"\bunknown type name {_NAME}"),
        ("no-member", rf"\bhas no member named {_NAME}"),  # gcc
        ("no-member", rf"\bno member named {_NAME} in\b"),  # clang
        ("no-member", rf"\brequest for member {_NAME} in something not a structure"),
        ("unknown-field", rf"\bunknown field {_NAME} specified in initializer"),  # gcc
        ("unknown-field", rf"\bfield designator {_NAME} does not refer to any field"),  # clang
        ("incomplete-type", rf"\binvalid use of undefined type {_NAME}"),
        ("incomplete-type", rf"\bpointer to incomplete type {_NAME}"),
        ("incomplete-type", rf"\bhas incomplete type {_NAME}"),
        ("incomplete-type", rf"\bincomplete definition of type {_NAME}"),  # clang
        ("arguments", rf"\btoo (?:many|few) arguments to function {_NAME}"),  # gcc
        ("undefined-reference", rf"\bundefined reference to {_NAME}"),  # GNU ld
        ("undefined-reference", r"\bundefined symbol: (?P<name>[A-Za-z_]\w*)"),  # lld
    )
)
_HEADER = (
    re.compile(r"^(?P<name>[^:\s]+\.h): No such file or directory"),  # gcc: fatal error: x.h: ...
    re.compile(rf"^{_NAME} file not found"),  # clang
)

# `file:line:col: severity: message`; ld prints `file:line: message` or `file:(.text+0x1): ...`.
_LOCATION = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?:(?P<line>\d+)(?::\d+)?|\([^)]*\)):\s*"
    r"(?:(?P<severity>fatal error|error|warning|note):\s*)?(?P<message>.*)$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[mK]")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_TYPE_TAG = re.compile(r"^(?:const |volatile )*(?:struct|union|enum) ")


@dataclass(frozen=True)
class CompilerError:
    """One name the build reports as missing, with where and how it said so."""

    identifier: str  # a C identifier, or a header path for kind "missing-header"
    kind: Kind
    file: str | None  # as the compiler printed it (relative to where make ran), or None
    line: int | None
    text: str  # the whole diagnostic line: the evidence shown to reviewers


def parse_errors(output: str) -> tuple[CompilerError, ...]:
    """The missing names in a build log, in order, each (name, kind, place) once.

    Notes are skipped (gcc's "each undeclared identifier is reported only once"); warnings are
    kept: an implicit declaration is a warning without -Werror, and it is the cause of the
    undefined reference the link reports later.
    """
    found: dict[tuple[str, Kind, str | None, int | None], CompilerError] = {}
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).strip()
        error = _parse_line(line)
        if error is not None:
            found.setdefault((error.identifier, error.kind, error.file, error.line), error)
    return tuple(found.values())


def identifiers(errors: Iterable[CompilerError]) -> tuple[str, ...]:
    """The C identifiers reported missing, first mention first."""
    return _unique(e.identifier for e in errors if e.kind != "missing-header")


def headers(errors: Iterable[CompilerError]) -> tuple[str, ...]:
    """The headers reported missing (`asm/foo.h`), as the `#include` names them."""
    return _unique(e.identifier for e in errors if e.kind == "missing-header")


def evidence(errors: Iterable[CompilerError], limit: int = 20) -> tuple[str, ...]:
    """The distinct diagnostic lines, for a report: the first `limit` of them."""
    return _unique(e.text for e in errors)[:limit]


def _parse_line(line: str) -> CompilerError | None:
    file: str | None = None
    number: int | None = None
    message = line
    located = _LOCATION.match(line)
    if located is not None:
        if located["severity"] == "note":
            return None
        file, message = located["file"], located["message"]
        number = int(located["line"]) if located["line"] else None
    else:
        # Lines without a place: `ld: ...`, `collect2: ...`, `fatal error: ...` from a driver.
        message = re.sub(r"^(?:\S*ld(?:\.\w+)?: |(?:fatal )?error: )+", "", line)
    for pattern in _HEADER:
        m = pattern.search(message)
        if m is not None:
            return CompilerError(m["name"], "missing-header", file, number, line)
    for kind, pattern in _MESSAGES:
        m = pattern.search(message)
        if m is not None:
            name = _identifier(m["name"])
            if name is None:
                return None
            return CompilerError(name, kind, file, number, line)
    return None


def _identifier(quoted: str) -> str | None:
    """`struct foo` -> `foo`; `helper.constprop.0` -> `helper`; None if not an identifier."""
    name = _TYPE_TAG.sub("", quoted.strip()).split(".", 1)[0].strip()
    return name if _IDENTIFIER.fullmatch(name) else None


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
