"""The tree of the notes ref (`refs/notes/xsabot`), read and written in any of git's layouts.

git keeps the note on commit `abcdef...` at the path `abcdef...` (flat) or, once there are
many notes, under fan-out directories of two hex digits each: `ab/cdef...`, `ab/cd/ef...`.
`git notes` picks the fan-out itself (after about a hundred notes) and rewrites the layout
whenever it writes, and it keeps any other file in the tree (a "non-note"). So the bot finds a
note wherever it is, and writes the whole tree again in one layout chosen from the number of
notes alone (flat up to 256 notes, then `ab/...`, past 65536 `ab/cd/...`): every note is in
exactly one place, non-notes stay at their paths, and two replicas write the same tree.

A note found at two paths (a tree edited by hand) reads as git shows it, the texts joined by
a blank line (the deeper one first), and is written back once, so joined.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

import pygit2

from bot.git.objects import ObjectStore
from bot.git.trees import BLOB, REGULAR_MODES, TREE, Entry, sort_entries

FANOUT_AT = 256  # notes per tree level before another level of fan-out
_HEX = frozenset(string.hexdigits)

Node = dict[bytes, "Entry | Node"]


def find_note(repo: pygit2.Repository, notes: str, commit: str) -> bytes | None:
    """The note on `commit` in the notes commit `notes`, wherever its fan-out puts it."""
    tree = repo[notes].peel(pygit2.Tree)
    found: list[pygit2.Oid] = []
    rest = commit
    while True:
        here = _child(tree, rest)
        if isinstance(here, pygit2.Blob) and here.id not in found:
            found.append(here.id)
        below = _child(tree, rest[:2]) if len(rest) > 2 else None
        if not isinstance(below, pygit2.Tree):
            break
        tree, rest = below, rest[2:]
    if not found:
        return None
    # git joins them in the order of its walk, which meets `ab/` before `abcdef...`.
    return _joined([repo[oid].peel(pygit2.Blob).data for oid in reversed(found)])


def _child(tree: pygit2.Tree, name: str) -> pygit2.Object | None:
    try:
        return tree / name
    except KeyError:
        return None


def notes_tree(store: ObjectStore, old_tree: str | None, notes: Mapping[str, str]) -> str:
    """The tree of the notes ref: what `old_tree` held (any layout), with `notes` ({commit:
    blob ID}) added or replaced."""
    found: dict[str, list[bytes]] = {}
    others: dict[tuple[bytes, ...], Entry] = {}
    if old_tree is not None:
        _walk(store, bytes.fromhex(old_tree), "", (), found, others)
    blobs = {commit: _one(store, oids) for commit, oids in found.items()}
    blobs.update({commit: bytes.fromhex(blob) for commit, blob in notes.items()})
    depth = 0 if len(blobs) <= FANOUT_AT else 1 if len(blobs) <= FANOUT_AT**2 else 2
    # A non-note where a fan-out directory must go (a file named `ab`) makes it flat, where
    # only a non-note that git itself would take for a note (a tree named `abcdef...`) can
    # clash; the note wins there.
    root = _layout(blobs, others, depth) or _layout(blobs, others, 0, notes_win=True)
    assert root is not None
    return _write(store, root).hex()


def _walk(
    store: ObjectStore,
    tree: bytes,
    prefix: str,
    path: tuple[bytes, ...],
    found: dict[str, list[bytes]],
    others: dict[tuple[bytes, ...], Entry],
) -> None:
    """Collect the notes under `tree` (whose path spells the hex `prefix`) by commit, in
    git's order (tree order, depth first: `ab/` sorts before `abcdef...`), and every other
    entry by path, as git's notes code tells them apart."""
    for name, (mode, oid) in store.tree_entries(tree).items():
        digits = _hex(name)
        if digits is not None:
            full = prefix + digits
            if len(full) == 40 and mode in REGULAR_MODES:
                found.setdefault(full, []).append(oid)
                continue
            if len(full) < 40 and len(name) == 2 and mode == TREE:
                _walk(store, oid, full, (*path, name), found, others)
                continue
        others[(*path, name)] = (mode, oid)


def _hex(name: bytes) -> str | None:
    text = name.decode("ascii", "replace")
    if len(text) % 2 or not text or not set(text) <= _HEX:
        return None
    return text.lower()


def _one(store: ObjectStore, oids: list[bytes]) -> bytes:
    """One blob for a note found at several paths: the texts joined as git shows them."""
    unique = list(dict.fromkeys(oids))
    if len(unique) == 1:
        return unique[0]
    return store.write_bin("blob", _joined([store.blob(oid) for oid in unique]))


def _joined(texts: list[bytes]) -> bytes:
    """git's `combine_notes_concatenate`: each text without one trailing newline, joined by
    a blank line."""
    out = texts[0]
    for text in texts[1:]:
        out = out.removesuffix(b"\n") + b"\n\n" + text
    return out


def _layout(
    blobs: Mapping[str, bytes],
    others: Mapping[tuple[bytes, ...], Entry],
    depth: int,
    *,
    notes_win: bool = False,
) -> Node | None:
    """The nested tree with every note at `depth` levels of fan-out and every non-note at its
    path; None if they clash (unless `notes_win`: a note then replaces a non-note file)."""
    root: Node = {}
    for path, entry in others.items():
        if not _insert(root, path, entry):
            return None
    for commit, blob in blobs.items():
        fanout = [commit[2 * i : 2 * i + 2] for i in range(depth)]
        path = tuple(name.encode() for name in (*fanout, commit[2 * depth :]))
        if not _insert(root, path, (BLOB, blob), replace=notes_win):
            return None
    return root


def _insert(root: Node, path: tuple[bytes, ...], entry: Entry, *, replace: bool = False) -> bool:
    node = root
    for name in path[:-1]:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            return False
        node = child
    if isinstance(node.get(path[-1]), dict) or (path[-1] in node and not replace):
        return False
    node[path[-1]] = entry
    return True


def _write(store: ObjectStore, node: Node) -> bytes:
    entries = {
        name: (TREE, _write(store, child)) if isinstance(child, dict) else child
        for name, child in node.items()
    }
    return store.write_tree_bin(sort_entries(entries))
