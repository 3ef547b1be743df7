"""Edits the bot proposes to a manifest, made on its text so comments and layout survive.

Volunteers own the manifests: their comments (often the subject of each commit), blank lines,
key order, quoting and indentation must come through a bot edit unchanged, so the merge request
diff shows only what the bot adds. ruamel.yaml's round-trip mode keeps all of that; the
indentation is measured from the text itself rather than assumed.

An edit touches one XSA's entry, and a pass may propose for hundreds of XSAs of one manifest:
so the text is parsed once (`_layout`, cached by text), and each edit round-trips only its
entry's lines, spliced back into the text as it was. A manifest whose `xsas` is not a plain
block list (flow style, an entry sharing a line) is edited as a whole document instead.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from bot.errors import XsabotError

# A document start marker with only comments or blank lines before it: kept verbatim, since
# ruamel drops comments that precede `---`.
_PREAMBLE = re.compile(r"\A(?:[ \t]*(?:#[^\n]*)?\n)*---[ \t]*(?:#[^\n]*)?\n")


class ManifestEditError(XsabotError):
    """The manifest cannot take the edit: the XSA is not in it, or it is not a manifest."""


def add_prerequisites(
    text: str,
    xsa: int,
    prereqs: Sequence[tuple[str, str]],
    before: Mapping[str, str] | None = None,
) -> str:
    """Add `prerequisites` entries `{commit, why}` to XSA `xsa`: each goes before the ones
    it lists already that are placed before the same commit (and so before that commit).

    `prereqs` are (commit, why) pairs in the order they must be applied. `before` maps a
    commit to the XSA commit it must go right before, written as its `before:`; the others go
    before the first commit, as without `before:`. Commits the XSA already lists are skipped,
    so proposing the same set twice changes nothing; when nothing is new, `text` is returned
    as it is.
    """
    places = before or {}

    def edit(entry: CommentedMap) -> bool:
        existing = entry.get("prerequisites")
        listed = {str(p.get("commit")) for p in existing or () if isinstance(p, dict)}
        new = [(commit, why) for commit, why in prereqs if commit not in listed]
        if not new:
            return False
        if existing is None:
            existing = CommentedSeq()
            entry.insert(_position_before(entry, ("commits", "patches")), "prerequisites", existing)
        # New entries follow the style of the ones already there (`- {commit: .., why: ..}`).
        flow = (
            bool(existing) and isinstance(existing[0], CommentedMap) and existing[0].fa.flow_style()
        )
        commits = [str(c) for c in entry.get("commits") or ()]

        def slot(place: object) -> int:
            return commits.index(str(place)) if str(place) in commits else 0

        old = list(existing)
        for commit, why in new:
            item = CommentedMap([("commit", commit), ("why", _text(why))])
            if commit in places:
                item["before"] = places[commit]
            if flow:
                item.fa.set_flow_style()
            # First among those placed before the same commit: the finder proved the fix
            # applies with them picked before everything the XSA already lists there.
            mine = slot(places.get(commit))
            at = next(
                (
                    i
                    for i, q in enumerate(existing)
                    if isinstance(q, dict)
                    and (
                        slot(q.get("before")) > mine
                        or (slot(q.get("before")) == mine and any(q is o for o in old))
                    )
                ),
                len(existing),
            )
            existing.insert(at, item)
        return True

    return _edit_xsa(text, xsa, edit)


def mark_blocked(text: str, xsa: int, why: str) -> str:
    """Set `status: blocked` and `why` on XSA `xsa`, keeping its commits for a manual backport."""

    def edit(entry: CommentedMap) -> bool:
        if entry.get("status") == "blocked" and entry.get("why") == why:
            return False
        if "status" in entry:
            entry["status"] = "blocked"
        else:
            entry.insert(
                _position_before(entry, ("why", "prerequisites", "commits", "patches")),
                "status",
                "blocked",
            )
        if "why" in entry:
            entry["why"] = _text(why)
        else:
            entry.insert(list(entry).index("status") + 1, "why", _text(why))
        return True

    return _edit_xsa(text, xsa, edit)


_KEY = "xsas:\n"  # an entry's lines under this key parse as they do in the manifest


@dataclass(frozen=True)
class _Layout:
    """Where each XSA's entry is in a manifest's text (its lines, from its `- ` to the next
    entry's, comments and blank lines after it included), and the text's indentation."""

    spans: dict[int, tuple[int, int]]  # XSA -> (start, end) character offsets in the text
    indent: tuple[int, int]  # (sequence, offset), as `_indentation` measures them


@functools.lru_cache(maxsize=16)
def _layout(text: str) -> _Layout | None:
    """The layout of a manifest whose `xsas` is a plain block list of entries each starting
    on a line `- xsa: ...` of its own; None for any other shape (edited whole)."""
    match = _PREAMBLE.match(text)
    skip = match.end() if match else 0
    body = text[skip:]
    indent = _indentation(body)
    try:
        data = _yaml(indent).load(body)
    except YAMLError:
        return None
    entries = data.get("xsas") if isinstance(data, CommentedMap) else None
    if not isinstance(entries, CommentedSeq) or not entries or entries.fa.flow_style():
        return None
    lines = body.splitlines(keepends=True)
    starts = [skip]
    for line in lines:
        starts.append(starts[-1] + len(line))
    first: list[int] = []
    numbers: list[int] = []
    for i, entry in enumerate(entries):
        row, col = entries.lc.item(i)
        number = entry.get("xsa") if isinstance(entry, CommentedMap) else None
        if not isinstance(number, int) or entry.fa.flow_style() or row >= len(lines):
            return None
        if lines[row][:col].strip() != "-" or (first and row <= first[-1]):
            return None
        first.append(row)
        numbers.append(number)
    keys = list(data)
    later = [data.lc.key(k)[0] for k in keys[keys.index("xsas") + 1 :]]
    end = min(later, default=len(lines))
    if end <= first[-1] or len(set(numbers)) != len(numbers):
        return None
    if any(line.startswith(("---", "...")) for line in lines[first[-1] : end]):
        return None  # a document marker: not part of the entry
    bounds = [*first, end]
    spans = {n: (starts[bounds[i]], starts[bounds[i + 1]]) for i, n in enumerate(numbers)}
    return _Layout(spans, indent)


def _edit_xsa(text: str, xsa: int, edit: Callable[[CommentedMap], bool]) -> str:
    """`text` with `edit` made to XSA `xsa`'s entry: to that entry's lines alone when the
    layout allows (`_layout`), else to the whole document."""
    layout = _layout(text)
    if layout is None or xsa not in layout.spans:
        return _edit_document(text, xsa, edit)
    start, end = layout.spans[xsa]
    piece = _KEY + text[start:end]
    edited = _edit_document(piece, xsa, edit, indent=layout.indent)
    if edited == piece:
        return text
    if not edited.startswith(_KEY):
        return _edit_document(text, xsa, edit)
    return text[:start] + edited[len(_KEY) :] + text[end:]


def _edit_document(
    text: str,
    xsa: int,
    edit: Callable[[CommentedMap], bool],
    *,
    indent: tuple[int, int] | None = None,
) -> str:
    """`text` with `edit` made to XSA `xsa`'s entry, the whole document parsed and dumped
    (`indent`: the indentation to dump with, if not the text's own)."""
    match = _PREAMBLE.match(text)
    preamble, body = (match.group(0), text[match.end() :]) if match else ("", text)
    yaml = _yaml(indent or _indentation(body))
    try:
        data = yaml.load(body)
    except YAMLError as exc:
        raise ManifestEditError(f"not valid YAML: {exc}") from None
    entries = data.get("xsas") if isinstance(data, CommentedMap) else None
    if not isinstance(entries, CommentedSeq):
        raise ManifestEditError("the manifest has no `xsas` list")
    entry = next((e for e in entries if isinstance(e, CommentedMap) and e.get("xsa") == xsa), None)
    if entry is None:
        listed = ", ".join(str(e.get("xsa")) for e in entries if isinstance(e, CommentedMap))
        raise ManifestEditError(f"XSA-{xsa} is not in the manifest (it lists: {listed or 'none'})")
    if not edit(entry):
        return text
    out = io.StringIO()
    yaml.dump(data, out)
    return preamble + out.getvalue()


def _indentation(text: str) -> tuple[int, int]:
    """The (sequence, offset) indentation the text itself uses."""
    try:
        _, sequence, offset = load_yaml_guess_indent(text)
    except YAMLError:
        sequence = None  # the load that follows reports it
    if sequence is None:  # no nested block sequence to measure: the shipped manifests' style
        sequence, offset = 4, 2
    return sequence, offset or 0


def _yaml(indent: tuple[int, int]) -> YAML:
    """A round-trip YAML set up with the indentation `indent`."""
    sequence, offset = indent
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a volunteer's long lines (flow lists of SHAs)
    yaml.indent(mapping=sequence - offset if offset else sequence, sequence=sequence, offset=offset)
    return yaml


def _position_before(entry: CommentedMap, keys: Sequence[str]) -> int:
    """Where a new key goes: before the first of `keys` present, else at the end."""
    present = list(entry)
    return next((present.index(k) for k in keys if k in present), len(present))


def _text(value: str) -> Any:
    # Quoted, because subjects often hold `: ` or start with characters YAML would misread.
    if "\n" in value:
        return LiteralScalarString(value)
    return DoubleQuotedScalarString(value)
