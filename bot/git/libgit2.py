"""libgit2's file merge and rename similarity: the fast functions, checked, and the slow ones.

The in-memory merge needs two pieces of libgit2 that `merge_trees` uses internally and pygit2's
cffi declarations leave out: `git_merge_file` (the 3-way file merge, on buffers) and the
`git_hashsig_*` rename-similarity signatures. Both are public, exported libgit2 API. They are
called in the very library pygit2 runs (found in /proc/self/maps), so they are the same code,
version and allocator as `merge_trees`; a second copy of libgit2 would be neither.

Declaring them by hand means trusting an ABI nobody checks for us, so `load` checks them once
per process on built-in examples against pygit2's public API: the file merge against
`merge_trees` on trees holding only that file (`merge_in_repository`, the slow path callers
fall back to), the similarity against the score `Diff.find_similar` gives a rename. Where they
cannot be loaded or disagree, one warning is logged and callers take the public-API paths,
which give the same answers more slowly. Either way their errors are `MergeEngineError`s.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

import cffi
import pygit2

from bot.errors import MergeEngineError

log = logging.getLogger(__name__)

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

typedef struct {
    char *message;
    int klass;
} git_error;
const git_error *git_error_last(void);
"""
_SYMBOLS = (
    "git_merge_file",
    "git_merge_file_result_free",
    "git_hashsig_create",
    "git_hashsig_free",
    "git_hashsig_compare",
    "git_error_last",
)

MERGE_FILE_INPUT_VERSION = 1
HASHSIG_NORMAL = 0
HASHSIG_SMART_WHITESPACE = 1 << 1  # the metric merge_trees' rename detection uses
EBUFS = -6  # "file too small for a similarity signature"

Side = tuple[int, bytes]  # one version of a file in a merge: (mode, content)


class Functions:
    """`git_merge_file` and `git_hashsig_*` bound in one loaded libgit2; errors are ours."""

    hashsig_options = HASHSIG_SMART_WHITESPACE

    def __init__(self, ffi: Any, lib: Any) -> None:
        for name in _SYMBOLS:
            getattr(lib, name)  # a missing symbol fails the load, not a merge in mid-build
        self.ffi = ffi
        self.lib = lib

    def merge_file(self, path: bytes, base: Side, ours: Side, theirs: Side) -> bytes | None:
        """The merged text, or None on a conflict; the path and modes go in as merge_trees'."""
        ffi, lib = self.ffi, self.lib
        new = ffi.new
        c_path = new("char[]", path)
        # cffi frees what nothing references: the buffers live as long as these names.
        b_buf, o_buf, t_buf = (
            ffi.from_buffer(base[1]),
            ffi.from_buffer(ours[1]),
            ffi.from_buffer(theirs[1]),
        )
        version = MERGE_FILE_INPUT_VERSION
        result = new("git_merge_file_result *")
        err = lib.git_merge_file(
            result,
            new("git_merge_file_input *", (version, b_buf, len(base[1]), c_path, base[0])),
            new("git_merge_file_input *", (version, o_buf, len(ours[1]), c_path, ours[0])),
            new("git_merge_file_input *", (version, t_buf, len(theirs[1]), c_path, theirs[0])),
            ffi.NULL,
        )
        if err < 0:
            raise MergeEngineError(f"libgit2 could not merge {_shown(path)}: {self._last_error()}")
        try:
            if not result.automergeable:
                return None
            return bytes(ffi.buffer(result.ptr, result.len)) if result.len else b""
        finally:
            lib.git_merge_file_result_free(result)

    def signature(self, data: bytes) -> Any:
        """The similarity signature of `data` (freed with it), None if too small for one."""
        ffi, lib = self.ffi, self.lib
        out = ffi.new("git_hashsig **")
        err = lib.git_hashsig_create(out, ffi.from_buffer(data), len(data), self.hashsig_options)
        if err == EBUFS:
            return None
        if err < 0:
            raise MergeEngineError(
                f"libgit2 could not make a similarity signature: {self._last_error()}"
            )
        return ffi.gc(out[0], lib.git_hashsig_free)

    def compare(self, a: Any, b: Any) -> int:
        """The similarity of two signatures, 0-100; None (a file too small) scores 0."""
        if a is None or b is None:
            return 0  # merge_trees marks such a file unusable for inexact renames
        score: int = self.lib.git_hashsig_compare(a, b)
        if score < 0:
            raise MergeEngineError(
                f"libgit2 could not compare similarity signatures: {self._last_error()}"
            )
        return min(score, 100)

    def similarity(self, a: bytes, b: bytes) -> int:
        return self.compare(self.signature(a), self.signature(b))

    def _last_error(self) -> str:
        error = self.lib.git_error_last()
        if error == self.ffi.NULL or error.message == self.ffi.NULL:
            return "no reason given"
        return str(self.ffi.string(error.message).decode("utf-8", "replace"))


Opener = Callable[[], Functions]


def open_library(path: str) -> Functions:
    """The functions in the libgit2 at `path` (raises if it is no libgit2 or lacks them)."""
    ffi = cffi.FFI()
    ffi.cdef(_DECLARATIONS)
    return Functions(ffi, ffi.dlopen(path))


def open_loaded() -> Functions:
    """The functions in the libgit2 pygit2 has loaded, found in /proc/self/maps (Linux)."""
    path = _loaded_library()
    if path is None:
        raise LookupError("pygit2's libgit2 is not among this process's mappings")
    return open_library(path)


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


_loaded: dict[Opener, Functions | None] = {}


def load(opener: Opener = open_loaded) -> Functions | None:
    """The functions `opener` gives once they pass `self_check`, else None and one warning.

    Once per process and opener: the check costs a few milliseconds, a merge nothing more.
    """
    if opener in _loaded:
        return _loaded[opener]
    functions: Functions | None
    try:
        functions = opener()
        problem = self_check(functions)
    except Exception as exc:  # any failure at all: the public-API paths give the same answers
        functions, problem = None, f"{type(exc).__name__}: {exc}"
    if problem is not None:
        log.warning(
            "libgit2's file merge on buffers and rename similarity are not usable (%s); "
            "merging through pygit2's public API instead: same results, slower",
            problem,
        )
        functions = None
    _loaded[opener] = functions
    return functions


# -- the public-API equivalents, and the check that the fast functions agree ------------------


def merge_in_repository(
    repo: pygit2.Repository,
    path: bytes,
    base: tuple[int, str],
    ours: tuple[int, str],
    theirs: tuple[int, str],
) -> bytes | None:
    """`Functions.merge_file` through pygit2's public API, on (mode, blob ID) in `repo`.

    `merge_trees` on three trees that hold only `path`: one path cannot take part in a rename,
    so all that runs is the file merge, the same `git_merge_file` on the same bytes. (pygit2's
    `merge_file_from_index` would be shorter, but decodes the result as UTF-8 and stops at a
    NUL.) The path's merge driver from attributes applies, as it does in `merge_trees`.
    """
    name = os.fsdecode(path)
    try:
        b, o, t = (_one_file_tree(repo, name, mode, oid) for mode, oid in (base, ours, theirs))
        merged = repo.merge_trees(b, o, t)
        if merged.conflicts is not None:
            return None
        return bytes(repo.odb.read(str(merged[name].id))[1])
    except (pygit2.GitError, OSError, KeyError, ValueError) as exc:
        raise MergeEngineError(f"merge_trees could not merge {_shown(path)}: {exc}") from exc


def rename_similarity(repo: pygit2.Repository, old: bytes, new: bytes) -> int:
    """The similarity `Diff.find_similar` gives `old` renamed to `new`; 0 if no rename."""
    blob = int(pygit2.enums.FileMode.BLOB)
    diff = repo.diff(
        _one_file_tree(repo, "old", blob, str(repo.create_blob(old))),
        _one_file_tree(repo, "new", blob, str(repo.create_blob(new))),
    )
    diff.find_similar(flags=pygit2.enums.DiffFind.FIND_RENAMES, rename_threshold=1)
    for delta in diff.deltas:
        if delta.status == pygit2.enums.DeltaStatus.RENAMED:
            return int(delta.similarity)
    return 0


def _one_file_tree(repo: pygit2.Repository, path: str, mode: int, oid: str) -> pygit2.Oid:
    index = pygit2.Index()
    index.add(pygit2.IndexEntry(path, pygit2.Oid(hex=oid), pygit2.enums.FileMode(mode)))
    return index.write_tree(repo)


def _numbered(*changes: tuple[int, bytes]) -> bytes:
    lines = [b"line %d\n" % i for i in range(12)]
    for i, text in changes:
        lines[i] = text
    return b"".join(lines)


# (base, ours, theirs, whether the sides conflict)
_MERGE_EXAMPLES = (
    (_numbered(), _numbered((1, b"ours\n")), _numbered((10, b"theirs\n")), False),
    (_numbered(), _numbered((5, b"ours\n")), _numbered((5, b"theirs\n")), True),
)


def _functions_text(indent: bytes, name: bytes, returns: Callable[[int], int]) -> bytes:
    return b"".join(
        b"int f%d%s(void)\n{\n%sreturn %d;\n}\n" % (i, name, indent, returns(i)) for i in range(6)
    )


# (old, new): whitespace and line changes that score differently under each whitespace mode
# (62 smart, 50 normal, 87 ignoring all whitespace).
_SIMILARITY_EXAMPLES = (
    (_functions_text(b"    ", b"", lambda i: i), _functions_text(b"\t", b" ", lambda i: i % 3)),
)
# Too few lines for a signature: merge_trees' metric (unlike Diff.find_similar's, which allows
# small files) has none, and scores such a file 0.
_TOO_SMALL = b"a\nb\n"


def self_check(functions: Functions) -> str | None:
    """Why `functions` disagree with pygit2's public API on the examples, or None."""
    with tempfile.TemporaryDirectory(prefix="xsabot-libgit2-") as tmp:
        repo = pygit2.init_repository(tmp, bare=True)
        for base, ours, theirs, conflicts in _MERGE_EXAMPLES:
            sides = [(0o100644, data) for data in (base, ours, theirs)]
            b, o, t = ((mode, str(repo.create_blob(data))) for mode, data in sides)
            want = merge_in_repository(repo, b"check.c", b, o, t)
            got = functions.merge_file(b"check.c", *sides)
            if got != want or (got is None) != conflicts:
                return f"git_merge_file gives {got!r} where merge_trees gives {want!r}"
        for old, new in _SIMILARITY_EXAMPLES:
            want_score = rename_similarity(repo, old, new)
            got_score = functions.similarity(old, new)
            if got_score != want_score:
                return f"git_hashsig scores {got_score} where Diff.find_similar gives {want_score}"
    if functions.signature(_TOO_SMALL) is not None:
        return "git_hashsig makes a signature of a two-line file"
    return None


def _shown(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")
