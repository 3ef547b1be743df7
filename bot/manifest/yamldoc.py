"""YAML text into a round-trip document, every problem located and nothing raised.

Manifests and the bot config are read with it. ruamel's round-trip mode is used because only it
records where every key and value is; ruamel is imported on first use so commands that never
read YAML do not pay for it.

The text is untrusted (a manifest comes from any merge request), and one file must never be
able to stop the process or the other files. So while the document is composed, before
anything is constructed, it refuses what neither a manifest nor the config has a use for:

- anchors and aliases: an alias shares the anchored node, so a few hundred bytes of nested
  aliases describe billions of values, which anything walking the document as a tree expands;
- explicit tags (`!!bool abc`, `!!int 0x`, `!!python/name:...`): ruamel's constructors crash on
  bad values of the standard ones and build arbitrary types for the others;
- nesting deeper than `MAX_DEPTH`: composing, constructing and validating recurse per level.

Each is a problem at its place; a refused alias composes to a null and a refused tag is dropped,
so the rest of the file is still read and every problem reported at once. Whatever else ruamel
raises while reading (a date like 2024-13-45, an integer too long to convert) is a problem at
the value it was building, or at least at the start of the file: never an exception.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.manifest.positions import Pos, find_duplicate, item_pos, key_pos, value_pos

if TYPE_CHECKING:
    from ruamel.yaml.composer import Composer
    from ruamel.yaml.constructor import RoundTripConstructor

# Manifests nest five levels (xsas, an entry, patches, a patch, its keys) and the config four.
MAX_DEPTH = 32


@dataclass
class Parsed:
    """The document (ruamel's round-trip types), or None; and every problem met reading it."""

    doc: Any = None
    problems: list[tuple[Pos, str]] = field(default_factory=list)


def decode(data: bytes) -> tuple[str | None, Pos]:
    """The UTF-8 text of `data`, or None and the place of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8"), (0, 0)
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        return None, (data.count(b"\n", 0, exc.start), exc.start - line_start)


def parse(text: str, what: str) -> Parsed:
    """Compose and construct `text`; `what` ("manifests", "the config") names it in problems.

    With any problem the document is None: a refused node left a stand-in behind.
    """
    from ruamel.yaml.composer import ComposerError
    from ruamel.yaml.parser import ParserError
    from ruamel.yaml.scanner import ScannerError

    yaml = _yaml()
    out = Parsed()
    error: Exception | None = None
    try:
        doc = yaml.load(text)
    except Exception as exc:  # ruamel reading untrusted text: all are the text's
        doc, error = None, exc
    composer = yaml.composer
    for token, pos, kind in composer.refused:
        out.problems.append((pos, f"{kind} are not allowed in {what} (`{token}`)"))
    if error is not None:
        # A syntax error is the file's own; a construction error may come from the nulls that
        # stand in for aliases (`<<: *defaults`), so it waits until the aliases are gone.
        if not composer.refused or isinstance(error, ScannerError | ParserError | ComposerError):
            out.problems.append(_load_error(text, error))
        return out
    if not out.problems:
        out.doc = doc
    return out


def text_problems(
    doc: Any, free_text: frozenset[str] = frozenset()
) -> Iterator[tuple[Pos, str, str]]:
    """Every key and text value holding a character no field of ours can take: where it is,
    its field (`xsas[0].why`) and why.

    Refused everywhere: control characters, lone surrogates (`"\\ud800"`), and the Unicode line
    separators; they forge lines in logs, commit headers and MR comments, and git or the OS
    refuse them later (a NUL in a path). Keys named in `free_text` (`why`) may hold tabs and
    line breaks, as a block scalar writes them.
    """
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and (why := _bad_character(key, multiline=False)):
                    yield key_pos(node, key), name, f"the key has {why}"
                if isinstance(value, str):
                    why = _bad_character(value, multiline=str(key) in free_text)
                    if why:
                        yield value_pos(node, key), name, f"the value has {why}"
                else:
                    stack.append((value, name))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, str) and (why := _bad_character(value, multiline=False)):
                    yield item_pos(node, i), f"{where}[{i}]", f"the value has {why}"
                else:
                    stack.append((value, f"{where}[{i}]"))


def _bad_character(text: str, *, multiline: bool) -> str | None:
    for ch in text:
        if multiline and ch in "\t\n":
            continue
        category = unicodedata.category(ch)
        if category == "Cc" or ch in "\u2028\u2029":
            name = {"\n": "a line break", "\t": "a tab", "\r": "a carriage return"}.get(ch)
            return name or f"the control character {_escaped(ch)}"
        if category == "Cs":
            return f"{_escaped(ch)}, which is not a character"
    return None


def _as_written(tag: str) -> str:
    core = "tag:yaml.org,2002:"
    return "!!" + tag[len(core) :] if tag.startswith(core) else tag


def _escaped(ch: str) -> str:
    return ch.encode("unicode_escape").decode("ascii")


@functools.cache
def _yaml_classes() -> tuple[type[Composer], type[RoundTripConstructor]]:
    """ruamel's composer and constructor made safe (created on first use, like ruamel)."""
    from ruamel.yaml.composer import Composer, ComposerError
    from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import AliasEvent, CollectionStartEvent
    from ruamel.yaml.nodes import ScalarNode

    class _Refusing(Composer):
        """Records anchors, aliases, tags and deep nesting as problems instead of composing
        them. Checking here costs one look at each event the parser already produced."""

        def __init__(self, loader: Any = None) -> None:
            super().__init__(loader=loader)
            self.warn_double_anchors = False  # every anchor is refused anyway, warned or not
            self.refused: list[tuple[str, Pos, str]] = []  # token, where, what kind
            self.nesting = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.parser.peek_event()
            mark = event.start_mark
            if isinstance(event, AliasEvent):
                self.parser.get_event()
                self._refuse(f"*{event.anchor}", mark, "anchors and aliases")
                tag = self.resolver.resolve(ScalarNode, "", (True, False))
                return ScalarNode(tag, "", event.start_mark, event.end_mark)
            if event.anchor is not None:
                self._refuse(f"&{event.anchor}", mark, "anchors and aliases")
            if event.tag is not None:
                self._refuse(_as_written(event.tag), mark, "tags")
                event.ctag = None  # composed as if untagged: resolved from the text alone
            if isinstance(event, CollectionStartEvent):
                self.nesting += 1
                if self.nesting > MAX_DEPTH:
                    # Stops here: the parser has no way to skip the rest of a nested value.
                    raise ComposerError(
                        None, None, f"values are nested more than {MAX_DEPTH} levels deep", mark
                    )
            try:
                return super().compose_node(parent, index)
            finally:
                if isinstance(event, CollectionStartEvent):
                    self.nesting -= 1

        def _refuse(self, token: str, mark: Any, kind: str) -> None:
            self.refused.append((token, (mark.line, mark.column), kind))

    class _Locating(RoundTripConstructor):
        """Turns whatever a constructor raises on a value into an error at that value."""

        def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
            try:
                return super().construct_non_recursive_object(node, tag)
            except YAMLError:
                raise
            except Exception as exc:  # a value of the text ruamel cannot build
                message = str(exc) or type(exc).__name__
                raise ConstructorError(None, None, message, node.start_mark) from None

    return _Refusing, _Locating


def _yaml() -> Any:
    """A round-trip loader: positions kept, what `_Refusing` refuses refused."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.Composer, yaml.Constructor = _yaml_classes()
    return yaml


def _load_error(text: str, exc: Exception) -> tuple[Pos, str]:
    """Where and why ruamel could not load `text`."""
    from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.reader import ReaderError

    if isinstance(exc, DuplicateKeyError):
        return _duplicate_key(text, exc.problem_mark)
    if isinstance(exc, ConstructorError) and exc.problem_mark is not None and not exc.context:
        # Raised by `_Locating` at the value (or by ruamel for a value it refuses to build).
        mark = exc.problem_mark
        return (mark.line, mark.column), f"YAML cannot be read: {exc.problem}"
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "cannot parse"
        if exc.problem and exc.context and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        pos = (mark.line, mark.column) if mark is not None else (0, 0)
        hint = _syntax_hint(text, pos, message)
        return pos, f"YAML syntax: {message}" + (f"; hint: {hint}" if hint else "")
    if isinstance(exc, ReaderError) and isinstance(exc.position, int):
        # A character YAML does not allow in a file (a raw NUL, most control characters).
        at = min(exc.position, len(text))
        line_start = text.rfind("\n", 0, at) + 1
        pos = (text.count("\n", 0, at), at - line_start)
        character = chr(exc.character) if isinstance(exc.character, int) else "?"
        return pos, f"YAML does not allow the character {_escaped(character)}"
    return (0, 0), f"YAML cannot be read: {exc or type(exc).__name__}"


def _syntax_hint(text: str, pos: Pos, message: str) -> str | None:
    """Plain words beside the parser's for the three mistakes people make most."""
    if "'\\t'" in message or "\t" in message:
        return "use spaces, not tabs, to indent"
    if message.startswith("mapping values are not allowed here"):
        lines = text.splitlines()
        before = lines[pos[0]][: pos[1]] if pos[0] < len(lines) else ""
        if ": " in before:  # `why: fix: the thing`: the second `: ` would start a key
            return 'quote a value that holds ": " (why: "x86: fix the thing")'
        return "check the indentation of this line: a key lines up with the keys beside it"
    if message.startswith(("expected <block end>", "while parsing a block", "did not find")):
        return (
            "check the indentation of the lines above: keys of one entry line up, and a list's"
            " `- ` items line up with each other"
        )
    return None


def _duplicate_key(text: str, mark: Any) -> tuple[Pos, str]:
    # ruamel's message points at the repeated key only; composing the node tree (no
    # construction, so no duplicate check) finds the first one. Only on this error path.
    fallback = (mark.line, mark.column)
    try:
        found = find_duplicate(_yaml().compose(text), mark.index)
    except Exception:  # it was composed once already; never worse than no hint
        found = None
    if found is None:
        return fallback, "duplicate key"
    key, first, second = found
    return second, f"duplicate key `{key}` (first at line {first[0] + 1})"
