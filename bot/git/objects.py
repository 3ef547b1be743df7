"""Objects read from a repository plus objects made in memory.

A build makes thousands of trees, blobs and commits; writing each as a loose object costs about
a millisecond, so new objects stay in memory and `flush` writes the ones still wanted as one pack.
Object IDs cross this interface as 40-hex strings.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import pygit2

Kind = Literal["blob", "tree", "commit", "tag"]
_TYPE_NUM: dict[str, int] = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
_NUM_TYPE = {v: k for k, v in _TYPE_NUM.items()}


def object_id(kind: Kind, data: bytes) -> str:
    return hashlib.sha1(b"%s %d\0%s" % (kind.encode(), len(data), data)).hexdigest()


class ObjectStore:
    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self._new: dict[str, tuple[Kind, bytes]] = {}

    def read(self, oid: str) -> tuple[Kind, bytes]:
        found = self._new.get(oid)
        if found is not None:
            return found
        num, data = self.repo.odb.read(oid)
        return _NUM_TYPE[num], data  # type: ignore[return-value]

    def contains(self, oid: str) -> bool:
        return oid in self._new or oid in self.repo.odb

    def write(self, kind: Kind, data: bytes) -> str:
        oid = object_id(kind, data)
        if oid not in self._new:
            self._new[oid] = (kind, data)
        return oid

    def flush(self) -> int:
        """Write every object made in memory into the repository; returns how many."""
        count = 0
        for oid, (kind, data) in self._new.items():
            if oid not in self.repo.odb:
                self.repo.odb.write(_TYPE_NUM[kind], data)
                count += 1
        self._new.clear()
        return count
