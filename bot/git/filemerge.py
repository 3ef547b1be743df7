"""libgit2's 3-way merge of one file: the code `merge_trees` runs for a file both sides changed.

`merge_trees` reads the three blobs from the object database and calls xdiff through
`git_merge_file`. Calling that same function on buffers gives the same bytes without needing
the blobs in the database; blobs made by earlier in-memory merges are exactly the ones that are
not there. Without the buffer function (see `bot.git.libgit2`), the in-memory blobs are written
out and pygit2's `git_merge_file_from_index` is used: slower, same result.
"""

from __future__ import annotations

from typing import Any

from pygit2._libgit2 import ffi as pygit2_ffi
from pygit2._libgit2 import lib as pygit2_lib

from bot.git import libgit2
from bot.git.objects import ObjectStore
from bot.git.trees import Entry, mode_number


class FileMerger:
    """Merges one file's three versions; returns the merged bytes, or None on a conflict.

    Modes and the path go in as `merge_trees` passes them (they choose no lines, but are part
    of the call). The merged mode is the caller's job.
    """

    def __init__(self, store: ObjectStore, *, use_buffers: bool = True) -> None:
        self.store = store
        loaded = libgit2.load() if use_buffers else None
        self._ffi: Any = loaded[0] if loaded else None
        self._lib: Any = loaded[1] if loaded else None

    def merge(self, path: bytes, base: Entry, ours: Entry, theirs: Entry) -> bytes | None:
        if self._lib is not None:
            return self._merge_buffers(path, base, ours, theirs)
        return self._merge_from_index(path, base, ours, theirs)

    def _merge_buffers(self, path: bytes, base: Entry, ours: Entry, theirs: Entry) -> bytes | None:
        ffi, lib = self._ffi, self._lib
        keep: list[Any] = []  # cffi frees what nothing references: hold the buffers
        inputs = []
        c_path = ffi.new("char[]", path)
        for mode, oid in (base, ours, theirs):
            data = self.store.blob(oid)
            item = ffi.new("git_merge_file_input *")
            item.version = libgit2.MERGE_FILE_INPUT_VERSION
            buf = ffi.from_buffer(data)
            keep.append(buf)
            item.ptr = buf
            item.size = len(data)
            item.path = c_path
            item.mode = mode_number(mode)
            inputs.append(item)
        result = ffi.new("git_merge_file_result *")
        if lib.git_merge_file(result, inputs[0], inputs[1], inputs[2], ffi.NULL) < 0:
            raise RuntimeError(f"git_merge_file failed on {path!r}")
        return _take(ffi, lib, result)

    def _merge_from_index(
        self, path: bytes, base: Entry, ours: Entry, theirs: Entry
    ) -> bytes | None:
        ffi, lib = pygit2_ffi, pygit2_lib
        self.store.materialize(oid.hex() for _, oid in (base, ours, theirs))
        c_path = ffi.new("char[]", path)
        entries = []
        for mode, oid in (base, ours, theirs):
            entry = ffi.new("git_index_entry *")
            entry.mode = mode_number(mode)
            ffi.buffer(ffi.addressof(entry, "id"))[:20] = oid
            entry.path = c_path
            entries.append(entry)
        result = ffi.new("git_merge_file_result *")
        repo = self.store.repo
        err = lib.git_merge_file_from_index(
            result, repo._repo, entries[0], entries[1], entries[2], ffi.NULL
        )
        if err < 0:
            raise RuntimeError(f"git_merge_file_from_index failed on {path!r}")
        return _take(ffi, lib, result)


def _take(ffi: Any, lib: Any, result: Any) -> bytes | None:
    """The merged text of a `git_merge_file_result` (None when it conflicts), freed after."""
    try:
        if not result.automergeable:
            return None
        return bytes(ffi.buffer(result.ptr, result.len)) if result.len else b""
    finally:
        lib.git_merge_file_result_free(result)
