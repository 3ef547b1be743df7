"""Git ref name rules (`git check-ref-format`), checked without running git.

The manifest names a tag (`base`) and branches (`source`, `branch`); a bad name would otherwise
surface only when the bot pushes or fetches, far from the line that is wrong. Each check returns
why a name is invalid, in words a volunteer can act on, or None when git would accept it.
The `*_PATTERN`s are the same rules as ECMA/Python regexes, for the JSON Schema.
"""

from __future__ import annotations

# Characters git refuses anywhere: ASCII control characters, DEL, space and the revision
# syntax `~^:?*[\` (see `man git-check-ref-format`, rules 4, 5 and 10).
_BAD_CHARS = {ch: f"`{ch}`" for ch in "~^:?*["} | {"\\": "a backslash", " ": "a space"}

# The same rules as one anchored regex (negative lookaheads are valid in ECMA 262 too), so
# editors checking manifests against the JSON Schema flag the same names.
REF_NAME_PATTERN = (
    r"^(?!@$)"  # not `@` alone
    r"(?!/)(?!.*/$)(?!.*//)"  # no empty component
    r"(?!.*\.\.)(?!.*@\{)"  # no `..`, no `@{`
    r"(?!.*\.$)"  # no trailing dot
    r"(?!(?:.*/)?\.)"  # no component starting with a dot
    r"(?!.*\.lock(?:/|$))"  # no component ending with `.lock`
    r"[^\x00-\x20\x7f~^:?*\[\\]+$"
)
# Tag and branch names given to `git tag`/`git branch` may not look like an option either,
# and a branch may not be called HEAD.
TAG_NAME_PATTERN = r"^(?!-)" + REF_NAME_PATTERN[1:]
BRANCH_NAME_PATTERN = r"^(?!-)(?!HEAD$)" + REF_NAME_PATTERN[1:]


def check_ref_format(name: str, *, allow_onelevel: bool = True) -> str | None:
    """Why `name` fails `git check-ref-format [--allow-onelevel]`, or None if it passes.

    `allow_onelevel` defaults to True because manifests use short names (`stable-4.19`);
    pass False to require a full name with at least one `/` (`refs/heads/...`).
    """
    if not name:
        return "is empty"
    if name == "@":
        return "is `@`, which git reads as HEAD"
    for ch in name:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return f"contains the control character {ch!r}"
        if ch in _BAD_CHARS:
            return f"contains {_BAD_CHARS[ch]}"
    if ".." in name:
        return "contains `..`"
    if "@{" in name:
        return "contains `@{`"
    if name.startswith("/"):
        return "starts with `/`"
    if name.endswith("/"):
        return "ends with `/`"
    if "//" in name:
        return "contains `//`"
    if name.endswith("."):
        return "ends with `.`"
    for component in name.split("/"):
        if component.startswith("."):
            return f"has a component starting with `.` ({component!r})"
        if component.endswith(".lock"):
            return f"has a component ending with `.lock` ({component!r})"
    if not allow_onelevel and "/" not in name:
        return "needs at least one `/`"
    return None


def check_branch_name(name: str) -> str | None:
    """Why `name` fails `git check-ref-format --branch`, or None if git accepts the branch."""
    return _check_short(name, "refs/heads/") or (
        "is `HEAD`, which git reserves" if name == "HEAD" else None
    )


def check_tag_name(name: str) -> str | None:
    """Why `name` is not a tag name `git tag` accepts, or None."""
    return _check_short(name, "refs/tags/")


def _check_short(name: str, prefix: str) -> str | None:
    # git checks the short name under its prefix, so one-level names are fine; it also
    # rejects a leading `-` so the name cannot be mistaken for an option.
    if not name:
        return "is empty"
    if name.startswith("-"):
        return "starts with `-`"
    if name == "@":  # `git branch @` reads it as HEAD even though `refs/heads/@` is valid
        return "is `@`, which git reads as HEAD"
    if name.startswith("/"):
        return "starts with `/`"
    return check_ref_format(prefix + name)
