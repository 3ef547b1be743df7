"""Objects read from a repository plus objects made in memory.

A build makes thousands of trees, blobs and commits; writing each as a loose object costs about
a millisecond, so new objects stay in memory and `flush` writes the ones still wanted as one
pack. Every object the bot composes comes through `write_bin`: the one place where registered
secrets are redacted from what goes into the mirror (build records, commit messages), whatever
text they came from (`bot.redact`; trees are names and IDs, and are left alone).

Object IDs cross this interface as 40-hex strings; the `*_bin` methods take and return 20-byte
binary IDs for the merge engine, which handles millions of them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Literal

import pygit2

from bot.git.pack import TYPE_NUMBERS, build_pack, store_pack
from bot.git.trees import GITLINK, Entries, format_tree, parse_tree
from bot.redact import redact_secret_bytes

Kind = Literal["blob", "tree", "commit", "tag"]
_TYPE_NUM: dict[str, int] = TYPE_NUMBERS
_NUM_TYPE: dict[int, Kind] = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}


def object_id(kind: Kind, data: bytes) -> str:
    return object_id_bin(kind, data).hex()


def object_id_bin(kind: Kind, data: bytes) -> bytes:
    return hashlib.sha1(b"%s %d\0%s" % (kind.encode(), len(data), data)).digest()


class ObjectStore:
    """Reads objects from `repo` and from memory; writes to memory until `flush`.

    Parsed trees and blob contents are cached: a pick reads the same directories and files
    again and again (the same fix lands on every point release of a line), and libgit2 keeps
    no blobs in its own cache (a 200 KB C file costs 0.5 ms to inflate from the pack).
    """

    def __init__(
        self,
        repo: pygit2.Repository,
        *,
        tree_cache_size: int = 50_000,
        blob_cache_bytes: int = 256 << 20,
    ) -> None:
        self.repo = repo
        self._new: dict[bytes, tuple[Kind, bytes]] = {}
        self._trees: dict[bytes, Entries] = {}
        self._tree_cache_size = tree_cache_size
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._blob_bytes = 0
        self._blob_cache_bytes = blob_cache_bytes
        self.loose_writes = 0  # objects `materialize` had to write one by one

    # -- reading -------------------------------------------------------------------------

    def read(self, oid: str) -> tuple[Kind, bytes]:
        return self.read_bin(bytes.fromhex(oid))

    def read_bin(self, oid: bytes) -> tuple[Kind, bytes]:
        found = self._new.get(oid)
        if found is not None:
            return found
        num, data = self.repo.odb.read(oid.hex())
        return _NUM_TYPE[num], data

    def contains(self, oid: str) -> bool:
        return bytes.fromhex(oid) in self._new or oid in self.repo.odb

    def tree_entries(self, oid: bytes) -> Entries:
        """The parsed tree `oid` (cached: callers must not modify the dict)."""
        entries = self._trees.get(oid)
        if entries is None:
            kind, data = self.read_bin(oid)
            if kind != "tree":
                raise ValueError(f"{oid.hex()} is a {kind}, not a tree")
            entries = parse_tree(data)
            if len(self._trees) >= self._tree_cache_size:
                self._trees.clear()  # crude, but a build's working set is far smaller
            self._trees[oid] = entries
        return entries

    def blob(self, oid: bytes) -> bytes:
        data = self._blobs.get(oid)
        if data is not None:
            self._blobs.move_to_end(oid)
            return data
        kind, data = self.read_bin(oid)
        if kind != "blob":
            raise ValueError(f"{oid.hex()} is a {kind}, not a blob")
        self._blobs[oid] = data
        self._blob_bytes += len(data)
        while self._blob_bytes > self._blob_cache_bytes and len(self._blobs) > 1:
            _, old = self._blobs.popitem(last=False)
            self._blob_bytes -= len(old)
        return data

    # -- writing -------------------------------------------------------------------------

    def write(self, kind: Kind, data: bytes) -> str:
        return self.write_bin(kind, data).hex()

    def write_bin(self, kind: Kind, data: bytes) -> bytes:
        if kind != "tree":
            data = redact_secret_bytes(data)
        oid = object_id_bin(kind, data)
        if oid not in self._new:
            self._new[oid] = (kind, data)
        return oid

    def write_tree_bin(self, entries: Entries) -> bytes:
        """Write a tree from `entries` in git's order; the parsed form goes in the cache."""
        oid = self.write_bin("tree", format_tree(entries))
        self._trees.setdefault(oid, entries)
        return oid

    @property
    def pending(self) -> int:
        """How many objects are in memory only."""
        return len(self._new)

    def materialize(self, oids: Iterable[str]) -> int:
        """Write `oids` and every in-memory object they reach into the repository, now.

        For code that hands IDs to libgit2 or git (a full `merge_trees`, `git apply`): they read
        the object database, not this store. Loose writes: this is the rare path. Returns how
        many objects were written.
        """
        written = 0
        for oid in self._reachable(bytes.fromhex(o) for o in oids):
            kind, data = self._new.pop(oid)
            self.repo.odb.write(_TYPE_NUM[kind], data)
            written += 1
        self.loose_writes += written
        return written

    def flush(self, roots: Iterable[str] | None = None) -> int:
        """Write the objects made in memory into the repository as one pack; returns how many.

        With `roots` (commit, tree or other IDs), only the in-memory objects they reach are
        written; the rest stay in memory (a later flush may still want them, and caches such as
        the merger's refer to them). Objects the repository already has are not written again.
        """
        if roots is None:
            chosen = list(self._new)
        else:
            chosen = self._reachable(bytes.fromhex(r) for r in roots)
        odb = self.repo.odb
        wanted = [oid for oid in chosen if oid.hex() not in odb]
        if wanted:
            pack = build_pack((self._new[oid] for oid in wanted), len(wanted))
            store_pack(self.repo.path, pack)
        for oid in chosen:
            del self._new[oid]
        return len(wanted)

    def _reachable(self, roots: Iterable[bytes]) -> list[bytes]:
        """In-memory objects reachable from `roots` without passing through the repository.

        Objects in the repository are closed under reachability, so the walk stops at them.
        """
        seen: set[bytes] = set()
        order: list[bytes] = []
        stack = [oid for oid in roots if oid in self._new]
        while stack:
            oid = stack.pop()
            if oid in seen:
                continue
            seen.add(oid)
            order.append(oid)
            kind, data = self._new[oid]
            if kind == "tree":
                children = [o for m, o in parse_tree(data).values() if m != GITLINK]
            elif kind == "commit":
                children = _commit_links(data)
            elif kind == "tag":
                children = [bytes.fromhex(data[7:47].decode())]  # "object <hex>\n"
            else:
                children = []
            stack.extend(c for c in children if c in self._new and c not in seen)
        return order


def _commit_links(data: bytes) -> list[bytes]:
    links: list[bytes] = []
    for line in data.split(b"\n\n", 1)[0].split(b"\n"):
        key, _, value = line.partition(b" ")
        if key in (b"tree", b"parent"):
            links.append(bytes.fromhex(value.decode()))
    return links
