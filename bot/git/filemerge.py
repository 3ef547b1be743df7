"""libgit2's 3-way merge of one file: the code `merge_trees` runs for a file both sides changed.

`merge_trees` reads the three blobs from the object database and calls xdiff through
`git_merge_file`. Calling that same function on buffers gives the same bytes without needing
the blobs in the database; blobs made by earlier in-memory merges are exactly the ones that are
not there. pygit2's cffi declarations only carry `git_merge_file_from_index`, so the buffer
function is reached in the libgit2 library pygit2 has already loaded (same copy, same
allocator). Where that library cannot be found, the in-memory blobs are written out and the
index variant is used: slower, same result.
"""

from __future__ import annotations

import os
from typing import Any

import cffi  # type: ignore[import-untyped]
from pygit2._libgit2 import ffi as pygit2_ffi
from pygit2._libgit2 import lib as pygit2_lib

from bot.git.objects import ObjectStore
from bot.git.trees import Entry, mode_number

_DECLARATIONS = """
typedef struct {
    unsigned int version;
    const char *ptr;
    size_t size;
    const char *path;
    unsigned int mode;
} git_merge_file_input;
typedef struct {
    unsigned int automergeable;
    const char *path;
    unsigned int mode;
    const char *ptr;
    size_t len;
} git_merge_file_result;
int git_merge_file(git_merge_file_result *out, const git_merge_file_input *ancestor,
                   const git_merge_file_input *ours, const git_merge_file_input *theirs,
                   const void *opts);
void git_merge_file_result_free(git_merge_file_result *result);
"""
_INPUT_VERSION = 1


def _loaded_libgit2() -> str | None:
    """The path of the libgit2 shared library in this process (Linux), if any."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if os.path.basename(path).startswith("libgit2") and ".so" in path:
                    return path
    except OSError:
        return None
    return None


class FileMerger:
    """Merges one file's three versions; returns the merged bytes, or None on a conflict.

    Only what decides the merge goes in: contents, and modes and paths as `merge_trees` passes
    them (they pick no lines, but are part of the call). The merged mode is the caller's job.
    """

    def __init__(self, store: ObjectStore, *, use_buffers: bool = True) -> None:
        self.store = store
        self._ffi: Any = None
        self._lib: Any = None
        path = _loaded_libgit2() if use_buffers else None
        if path is not None:
            ffi = cffi.FFI()
            ffi.cdef(_DECLARATIONS)
            self._ffi, self._lib = ffi, ffi.dlopen(path)

    @property
    def in_memory(self) -> bool:
        return self._lib is not None

    def merge(self, path: bytes, base: Entry, ours: Entry, theirs: Entry) -> bytes | None:
        if self._lib is not None:
            return self._merge_buffers(path, base, ours, theirs)
        return self._merge_from_index(path, base, ours, theirs)

    def _merge_buffers(self, path: bytes, base: Entry, ours: Entry, theirs: Entry) -> bytes | None:
        ffi, lib = self._ffi, self._lib
        keep: list[Any] = []
        inputs = []
        c_path = ffi.new("char[]", path)
        for mode, oid in (base, ours, theirs):
            data = self.store.blob(oid)
            item = ffi.new("git_merge_file_input *")
            item.version = _INPUT_VERSION
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
        try:
            if not result.automergeable:
                return None
            return bytes(ffi.buffer(result.ptr, result.len)) if result.len else b""
        finally:
            lib.git_merge_file_result_free(result)

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
        try:
            if not result.automergeable:
                return None
            return bytes(ffi.buffer(result.ptr, result.len)) if result.len else b""
        finally:
            lib.git_merge_file_result_free(result)
