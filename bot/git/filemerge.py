"""libgit2's 3-way merge of one file: the code `merge_trees` runs for a file both sides changed.

`merge_trees` reads the three blobs from the object database and calls xdiff through
`git_merge_file`. Calling that same function on buffers gives the same bytes without needing
the blobs in the database; blobs made by earlier in-memory merges are exactly the ones that are
not there. Without the buffer function (see `bot.git.libgit2`), the in-memory blobs are written
out and `merge_trees` merges trees holding only that file: slower, same result.
"""

from __future__ import annotations

import pygit2

from bot.errors import MergeEngineError
from bot.git import libgit2
from bot.git.objects import ObjectStore
from bot.git.trees import Entry, mode_number


class FileMerger:
    """Merges one file's three versions; returns the merged bytes, or None on a conflict.

    Modes and the path go in as `merge_trees` passes them (they choose no lines, but are part
    of the call). The merged mode is the caller's job, and so is choosing the text merge: the
    slow path applies the path's merge driver from attributes, the fast path never does.
    Failures raise `MergeEngineError`.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        use_buffers: bool = True,
        opener: libgit2.Opener = libgit2.open_loaded,
    ) -> None:
        self.store = store
        self._functions = libgit2.load(opener) if use_buffers else None

    def merge(self, path: bytes, base: Entry, ours: Entry, theirs: Entry) -> bytes | None:
        functions = self._functions
        if functions is None:
            return self._merge_in_repository(path, base, ours, theirs)
        blob = self.store.blob
        return functions.merge_file(
            path,
            (mode_number(base[0]), blob(base[1])),
            (mode_number(ours[0]), blob(ours[1])),
            (mode_number(theirs[0]), blob(theirs[1])),
        )

    def _merge_in_repository(
        self, path: bytes, base: Entry, ours: Entry, theirs: Entry
    ) -> bytes | None:
        sides = [(mode_number(mode), oid.hex()) for mode, oid in (base, ours, theirs)]
        try:
            self.store.materialize(oid for _, oid in sides)
        except (pygit2.GitError, OSError, KeyError, ValueError) as exc:
            raise MergeEngineError(
                f"could not write the versions of {path.decode('utf-8', 'backslashreplace')} "
                f"to merge them: {exc}"
            ) from exc
        return libgit2.merge_in_repository(self.store.repo, path, *sides)
