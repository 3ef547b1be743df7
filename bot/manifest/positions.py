"""Where things are in a manifest file: ruamel round-trip positions, 0-based (line, col).

Pydantic reports an error at a location like `('xsas', 1, 'commits', 0)`; `locate` turns that
into the place a volunteer should look at.
"""

from __future__ import annotations

from typing import Any

Pos = tuple[int, int]


def node_pos(node: Any) -> Pos:
    """Where a mapping or list starts; (0, 0) for a value ruamel keeps no position for."""
    lc = getattr(node, "lc", None)
    return _pos((lc.line, lc.col)) if lc is not None else (0, 0)


def value_pos(mapping: Any, key: object) -> Pos:
    """Where the value of `key` is written; its key when the value is empty."""
    try:
        # ruamel puts an empty value at the start of whatever follows; the key is clearer.
        if mapping[key] is None:
            return key_pos(mapping, key)
        return _pos(mapping.lc.value(key))
    except (KeyError, TypeError, AttributeError):  # keys merged in with `<<` have no position
        return node_pos(mapping)


def key_pos(mapping: Any, key: object) -> Pos:
    try:
        return _pos(mapping.lc.key(key))
    except (KeyError, TypeError, AttributeError):
        return node_pos(mapping)


def item_pos(seq: Any, index: int) -> Pos:
    try:
        return _pos(seq.lc.item(index))
    except (KeyError, TypeError, AttributeError, IndexError):
        return node_pos(seq)


def _pos(found: Any) -> Pos:
    """ruamel's (line, col), or (0, 0) where it has none (a value it made, not one it read)."""
    line, col = found
    return (line, col) if isinstance(line, int) and isinstance(col, int) else (0, 0)


def locate(doc: Any, loc: tuple[int | str, ...], *, at_key: bool) -> Pos:
    """The position of pydantic's error location `loc` in the document.

    Values point at the value, unknown keys (`at_key`) at the key, and a location that does not
    exist in the file (a missing key) at the mapping that lacks it.
    """
    node, pos = doc, node_pos(doc)
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            if at_key and i == len(loc) - 1:
                return key_pos(node, part)
            pos, node = value_pos(node, part), node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            pos, node = item_pos(node, part), node[part]
        else:
            break
    return pos


def first_content(text: str) -> Pos:
    """The first line that is not blank, a comment or a document marker."""
    for n, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "---", "%")):
            return (n, len(line) - len(line.lstrip()))
    return (0, 0)


def find_duplicate(root: Any, index: int) -> tuple[str, Pos, Pos] | None:
    """The repeated key starting at `index`, with where it is first and second written."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        if node.id == "mapping":
            keys = [k for k, _ in node.value]
            for k in keys:
                if k.start_mark.index == index:
                    twin = next(o for o in keys if o.id == k.id and o.value == k.value)
                    first, second = twin.start_mark, k.start_mark
                    return (str(k.value), (first.line, first.column), (second.line, second.column))
            stack += [n for pair in node.value for n in pair]
        elif node.id == "sequence":
            stack += node.value
    return None
