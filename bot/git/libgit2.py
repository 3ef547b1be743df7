"""libgit2 functions that pygit2 does not declare, taken from the copy pygit2 has loaded.

The in-memory merge needs two pieces of libgit2 that `merge_trees` uses internally and pygit2's
cffi declarations leave out: `git_merge_file` (the 3-way file merge, on buffers) and the
`git_hashsig_*` rename-similarity signatures. Both are public, exported libgit2 API. They are
called in the very library pygit2 runs (found in /proc/self/maps), so they are the same code,
version and allocator as `merge_trees`; a second copy of libgit2 would be neither. Where the
library cannot be found (not Linux), `load()` returns None and callers take slower paths that
give the same answers.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import cffi
import pygit2  # noqa: F401  # loads libgit2 into the process

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

typedef struct git_hashsig git_hashsig;
int git_hashsig_create(git_hashsig **out, const char *buf, size_t buflen, int opts);
void git_hashsig_free(git_hashsig *sig);
int git_hashsig_compare(const git_hashsig *a, const git_hashsig *b);
"""

MERGE_FILE_INPUT_VERSION = 1
HASHSIG_SMART_WHITESPACE = 1 << 1  # the metric merge_trees' rename detection uses
EBUFS = -6  # "file too small for a similarity signature"


def _loaded_library() -> str | None:
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                name = os.path.basename(path)
                if name.startswith("libgit2") and ".so" in name:
                    return path
    except OSError:
        return None
    return None


@functools.cache
def load() -> tuple[Any, Any] | None:
    """(ffi, lib) for the functions above, or None where the library cannot be found."""
    path = _loaded_library()
    if path is None:
        return None
    ffi = cffi.FFI()
    ffi.cdef(_DECLARATIONS)
    return ffi, ffi.dlopen(path)
