"""Rename similarity as `merge_trees` scores it: libgit2's hashsig, smart whitespace, 0-100.

The path-limited merge uses it to prove that rename detection cannot pair a deleted file with
anything (every score below the threshold), so a delete/modify conflict can be reported without
running the full merge.
"""

from __future__ import annotations

from typing import Any

from bot.errors import MergeEngineError
from bot.git import libgit2
from bot.git.objects import ObjectStore

RENAME_THRESHOLD = 50  # GIT_MERGE_DEFAULT_RENAME_THRESHOLD: pygit2 leaves it at the default


class Similarity:
    """Scores from libgit2's own functions; without them (`available` False) the caller must
    assume any pair may be similar, and leave the decision to `merge_trees`."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        cache_size: int = 20_000,
        opener: libgit2.Opener = libgit2.open_loaded,
    ) -> None:
        self.store = store
        self._functions = libgit2.load(opener)
        self._signatures: dict[bytes, Any] = {}
        self._scores: dict[tuple[bytes, bytes], int] = {}
        self._cache_size = cache_size

    @property
    def available(self) -> bool:
        return self._functions is not None

    def score(self, a: bytes, b: bytes) -> int:
        """libgit2's similarity of blobs `a` and `b` (binary IDs); 0 if either is too small."""
        key = (a, b)
        found = self._scores.get(key)
        if found is None:
            functions = self._functions
            if functions is None:
                raise MergeEngineError("libgit2's rename similarity is not available")
            sig_a, sig_b = self._signature(functions, a), self._signature(functions, b)
            try:
                found = functions.compare(sig_a, sig_b)
            except MergeEngineError as exc:
                raise MergeEngineError(f"{exc} (blobs {a.hex()} and {b.hex()})") from exc
            if len(self._scores) >= self._cache_size:
                self._scores.clear()
            self._scores[key] = found
        return found

    def _signature(self, functions: libgit2.Functions, oid: bytes) -> Any:
        if oid in self._signatures:
            return self._signatures[oid]
        try:
            sig = functions.signature(self.store.blob(oid))
        except MergeEngineError as exc:
            raise MergeEngineError(f"{exc} (blob {oid.hex()})") from exc
        if len(self._signatures) >= self._cache_size:
            self._signatures.clear()
        self._signatures[oid] = sig
        return sig
