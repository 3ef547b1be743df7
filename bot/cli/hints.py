"""Plain-words hints for the environment errors people meet first: no network, a path that is
not a clone, a mirror the bot may not write. An error is matched by the words git or the OS
put in it; each hint is given once, however many branches or commands met the same cause."""

from __future__ import annotations

import re
from collections.abc import Iterable

_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"Could not resolve host|Failed to connect|Couldn't connect|Network is unreachable"
            r"|Connection (timed out|refused)|Temporary failure in name resolution",
            re.IGNORECASE,
        ),
        "the repository cannot be reached (no network?): point the tree at a local clone with "
        "`--upstream PATH` or `XSABOT_UPSTREAM_XEN=PATH` (XSABOT_UPSTREAM_<TREE> for another "
        "tree); a clone: git clone https://xenbits.xen.org/git-http/xen.git",
    ),
    (
        re.compile(r"no such directory|does not appear to be a git repository|not a git repo"),
        "a local upstream or mirror must be a git repository: check the path given with "
        "`--upstream`/`--mirror` (or XSABOT_UPSTREAM_<TREE>, or the config's `trees`)",
    ),
    (
        re.compile(r"Permission denied|Read-only file system|insufficient permission", re.I),
        "the bot may not write there: check the owner and mode of the mirror and of the state "
        "directory, or give writable ones with `--mirror TREE=PATH` and `--state DIR`",
    ),
    (
        re.compile(r"Authentication failed|could not read Username|terminal prompts disabled"),
        "the repository asks for credentials the bot does not have: use a URL that needs none "
        "for reading, or a local clone (`--upstream PATH`)",
    ),
    (
        re.compile(r"timed out after", re.IGNORECASE),
        "git took too long: a first fetch of Xen over a slow link can; fetch a clone once "
        "yourself and give it with `--upstream PATH`",
    ),
)


def explain(messages: Iterable[str]) -> list[str]:
    """The hints for `messages`, each once, in the order of `_HINTS`."""
    texts = list(messages)
    return [hint for pattern, hint in _HINTS if any(pattern.search(t) for t in texts)]
