"""Rename similarity as `merge_trees` scores it: libgit2's hashsig, smart whitespace, 0-100.

The path-limited merge uses it to prove that rename detection cannot pair a deleted file with
anything (every score below the threshold), so a delete/modify conflict can be reported without
running the full merge.
"""

from __future__ import annotations

from typing import Any

from bot.git import libgit2
from bot.git.objects import ObjectStore

RENAME_THRESHOLD = 50  # GIT_MERGE_DEFAULT_RENAME_THRESHOLD: pygit2 leaves it at the default


class Similarity:
    def __init__(self, store: ObjectStore, *, cache_size: int = 20_000) -> None:
        self.store = store
        loaded = libgit2.load()
        self._ffi: Any = loaded[0] if loaded else None
        self._lib: Any = loaded[1] if loaded else None
        self._signatures: dict[bytes, Any] = {}
        self._scores: dict[tuple[bytes, bytes], int] = {}
        self._cache_size = cache_size

    @property
    def available(self) -> bool:
        return self._lib is not None

    def score(self, a: bytes, b: bytes) -> int:
        """libgit2's similarity of blobs `a` and `b` (binary IDs); 0 if either is too small."""
        key = (a, b)
        found = self._scores.get(key)
        if found is None:
            sig_a, sig_b = self._signature(a), self._signature(b)
            if sig_a is None or sig_b is None:
                found = 0  # merge_trees marks such a file unusable for inexact renames
            else:
                found = self._lib.git_hashsig_compare(sig_a, sig_b)
                if found < 0:
                    raise RuntimeError(f"git_hashsig_compare failed on {a.hex()} {b.hex()}")
                found = min(found, 100)
            if len(self._scores) >= self._cache_size:
                self._scores.clear()
            self._scores[key] = found
        return found

    def _signature(self, oid: bytes) -> Any:
        if oid in self._signatures:
            return self._signatures[oid]
        ffi, lib = self._ffi, self._lib
        data = self.store.blob(oid)
        out = ffi.new("git_hashsig **")
        err = lib.git_hashsig_create(
            out, ffi.from_buffer(data), len(data), libgit2.HASHSIG_SMART_WHITESPACE
        )
        if err == libgit2.EBUFS:
            sig = None
        elif err < 0:
            raise RuntimeError(f"git_hashsig_create failed on {oid.hex()}")
        else:
            sig = ffi.gc(out[0], lib.git_hashsig_free)
        if len(self._signatures) >= self._cache_size:
            self._signatures.clear()
        self._signatures[oid] = sig
        return sig
