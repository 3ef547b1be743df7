"""The libgit2 fast path: checked once against pygit2's public API, or off with one warning.

Without it, file merges go through `merge_trees` and rename similarity is left to `merge_trees`:
every result (merged bytes, conflicts, trees, commit IDs) must stay the same.
"""

from __future__ import annotations

import functools
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import pygit2
import pytest

from bot.errors import GitError, MergeEngineError
from bot.git import libgit2
from bot.git.commits import format_commit
from bot.git.filemerge import FileMerger
from bot.git.objects import ObjectStore
from bot.git.pick import Merge, TreeMerger
from bot.git.similarity import Similarity
from bot.git.trees import BLOB, EXECUTABLE, Entry
from tests.gitrepo import numbered
from tests.test_pick import _PATHS, Files, _mutate, _text, make_tree, reference

LOGGER = "bot.git.libgit2"


@pytest.fixture
def repo(tmp_path: Path) -> pygit2.Repository:
    return pygit2.init_repository(str(tmp_path / "repo.git"), bare=True)


def _no_libgit2() -> libgit2.Opener:
    """A fresh opener (so a fresh one-time warning) of a library without the functions."""
    return functools.partial(libgit2.open_library, "libc.so.6")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]


class _NormalWhitespace(libgit2.Functions):
    """The real functions, scoring similarity with a metric merge_trees does not use."""

    hashsig_options = libgit2.HASHSIG_NORMAL


class _RefusesOnePath:
    """The real libgit2, except that merging `path` hands git_merge_file no "ours": it refuses."""

    def __init__(self, real: libgit2.Functions, path: bytes) -> None:
        self._real = real
        self._path = path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real.lib, name)

    def git_merge_file(self, out: Any, ancestor: Any, ours: Any, theirs: Any, opts: Any) -> int:
        ffi = self._real.ffi
        if ffi.string(ours.path) == self._path:
            ours = ffi.NULL
        return int(self._real.lib.git_merge_file(out, ancestor, ours, theirs, opts))


# -- the self-check --------------------------------------------------------------------------


def test_the_self_check_passes_on_the_libgit2_pygit2_loaded(
    repo: pygit2.Repository, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    assert libgit2.self_check(libgit2.open_loaded()) is None
    assert libgit2.load() is not None
    assert Similarity(ObjectStore(repo)).available
    assert _warnings(caplog) == []


def test_the_check_runs_once_per_process_and_opener() -> None:
    opened: list[libgit2.Functions] = []

    def opener() -> libgit2.Functions:
        opened.append(libgit2.open_loaded())
        return opened[-1]

    first = libgit2.load(opener)
    assert first is not None
    assert libgit2.load(opener) is first
    assert len(opened) == 1


def test_a_similarity_metric_merge_trees_does_not_use_fails_the_check(
    repo: pygit2.Repository, caplog: pytest.LogCaptureFixture
) -> None:
    real = libgit2.open_loaded()
    normal = _NormalWhitespace(real.ffi, real.lib)
    assert libgit2.self_check(normal) == ("git_hashsig scores 50 where Diff.find_similar gives 62")
    caplog.set_level(logging.WARNING, LOGGER)
    opener = functools.partial(_NormalWhitespace, real.ffi, real.lib)
    assert libgit2.load(opener) is None
    assert not Similarity(ObjectStore(repo), opener=opener).available
    assert len(_warnings(caplog)) == 1
    assert "git_hashsig scores 50" in _warnings(caplog)[0]


@pytest.mark.parametrize(
    ("library", "reason"),
    [
        ("libc.so.6", "undefined symbol: git_merge_file"),
        ("/nonexistent/libgit2.so.1.9", "cannot load library"),
    ],
    ids=["no-such-functions", "no-such-file"],
)
def test_a_failed_load_falls_back_with_exactly_one_warning(
    repo: pygit2.Repository, caplog: pytest.LogCaptureFixture, library: str, reason: str
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    opener = functools.partial(libgit2.open_library, library)
    store = ObjectStore(repo)
    FileMerger(store, opener=opener)
    assert not Similarity(store, opener=opener).available
    TreeMerger(store, libgit2_opener=opener)
    TreeMerger(store, libgit2_opener=opener)
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert reason in warnings[0] and "same results, slower" in warnings[0]


def test_similarity_scores_are_what_diff_find_similar_gives_a_rename(
    repo: pygit2.Repository,
) -> None:
    """Beyond the check's one example: random edits of C-like files, from near-equal to unlike."""
    rng = random.Random(7)
    similarity = Similarity(ObjectStore(repo))
    scores = set()
    for _ in range(30):
        old = _text(rng, rng.randrange(5, 60))
        lines = old.splitlines(keepends=True)
        for _ in range(rng.randrange(0, len(lines))):
            lines[rng.randrange(len(lines))] = f"    {rng.choice(_PATHS)} {rng.randrange(9)}\n"
        new = "".join(lines)
        got = similarity.score(repo.create_blob(old).raw, repo.create_blob(new).raw)
        assert got == libgit2.rename_similarity(repo, old.encode(), new.encode()), (old, new)
        scores.add(got // 25)
    assert len(scores) >= 3  # low, middling and high scores alike


# -- the same results without the fast path --------------------------------------------------

REG, EXE = BLOB, EXECUTABLE
LATIN1 = numbered("Copyright (c) 2004 Ian Pratt, Keir Fraser. Ren\xe9 \xe9t\xe9", 12).encode(
    "latin-1"
)
LATE_NUL = b"x" * 8100 + b"\0 tail\n"  # a NUL past the 8000 bytes libgit2 looks at: text
CRLF = numbered("crlf", 12).replace("\n", "\r\n")

# name: (base, ours, theirs, modes, merges cleanly)
TRIPLES: dict[str, tuple[bytes, bytes, bytes, tuple[bytes, bytes, bytes], bool]] = {
    "distant-lines": (
        numbered("f", 20).encode(),
        numbered("f", 20, l2="ours").encode(),
        numbered("f", 20, l18="theirs").encode(),
        (REG, REG, REG),
        True,
    ),
    "same-line": (
        numbered("f", 20).encode(),
        numbered("f", 20, l9="ours").encode(),
        numbered("f", 20, l9="theirs").encode(),
        (REG, REG, REG),
        False,
    ),
    "same-change-both-sides": (
        numbered("f", 20).encode(),
        numbered("f", 20, l9="both", l1="ours").encode(),
        numbered("f", 20, l9="both", l19="theirs").encode(),
        (REG, REG, REG),
        True,
    ),
    "not-utf-8": (
        LATIN1,
        LATIN1.replace(b"line 2", b"line two \xe0"),
        LATIN1.replace(b"line 11", b"line eleven \xfc"),
        (REG, REG, REG),
        True,
    ),
    "nul-late-in-text": (
        b"head\n" + numbered("f", 12).encode() + LATE_NUL,
        b"head\n" + numbered("f", 12, l1="ours").encode() + LATE_NUL,
        b"head\n" + numbered("f", 12, l12="theirs").encode() + LATE_NUL,
        (REG, REG, REG),
        True,
    ),
    "binary": (
        b"\0bin" + bytes(range(256)),
        b"\0bin ours" + bytes(range(256)),
        b"\0bin theirs" + bytes(range(256)),
        (REG, REG, REG),
        False,
    ),
    "crlf": (
        CRLF.encode(),
        CRLF.replace("crlf line 2\r", "ours\r").encode(),
        CRLF.replace("crlf line 11\r", "theirs\r").encode(),
        (REG, REG, REG),
        True,
    ),
    "no-final-newline": (
        numbered("f", 10).encode().rstrip(b"\n"),
        numbered("f", 10, l1="ours").encode().rstrip(b"\n"),
        numbered("f", 10, l10="theirs").encode().rstrip(b"\n"),
        (REG, REG, REG),
        True,
    ),
    "emptied-on-one-side": (
        numbered("f", 10).encode(),
        b"",
        numbered("f", 10, l5="theirs").encode(),
        (REG, REG, REG),
        False,
    ),
    "mode-changed-on-one-side": (
        numbered("f", 20).encode(),
        numbered("f", 20, l2="ours").encode(),
        numbered("f", 20, l18="theirs").encode(),
        (REG, EXE, REG),
        True,
    ),
    "mode-changed-on-both-sides": (
        numbered("f", 20).encode(),
        numbered("f", 20, l2="ours").encode(),
        numbered("f", 20, l18="theirs").encode(),
        (REG, EXE, EXE),
        True,
    ),
}


@pytest.mark.parametrize("name", list(TRIPLES))
def test_file_merges_without_the_fast_path_give_the_same_bytes(
    repo: pygit2.Repository, name: str
) -> None:
    base, ours, theirs, modes, clean = TRIPLES[name]
    store = ObjectStore(repo)  # the blobs stay in memory: the fallback must write them out
    entries: list[Entry] = [
        (mode, store.write_bin("blob", data))
        for mode, data in zip(modes, (base, ours, theirs), strict=True)
    ]
    path = b"xen/common/f.c"
    fast = FileMerger(store).merge(path, *entries)
    slow = FileMerger(store, opener=_no_libgit2()).merge(path, *entries)
    assert fast == slow
    assert (fast is not None) == clean


def test_tree_merges_and_commits_without_the_fast_path_are_identical(
    repo: pygit2.Repository, caplog: pytest.LogCaptureFixture
) -> None:
    """Random picks, chained as a build chains them: the same trees and commit IDs either way,
    and both what merge_trees gives."""
    caplog.set_level(logging.WARNING, LOGGER)
    rng = random.Random(20250109)
    root: Files = {p: _text(rng, 25) for p in _PATHS}
    generations: list[Files] = [root]
    for _ in range(20):
        generations.append(_mutate(rng, rng.choice(generations), rng.randrange(1, 6)))
    fast = TreeMerger(ObjectStore(repo))
    slow = TreeMerger(ObjectStore(repo), libgit2_opener=_no_libgit2())
    heads = {"fast": "", "slow": ""}
    for step in range(150):
        base_files = rng.choice(generations)
        theirs_files = _mutate(rng, base_files, rng.randrange(1, 4))
        ours_files = _mutate(rng, base_files, rng.randrange(0, 8))
        base, ours, theirs = (make_tree(repo, f) for f in (base_files, ours_files, theirs_files))
        next_theirs = make_tree(repo, _mutate(rng, theirs_files, 2))
        results: dict[str, Merge] = {}
        for label, merger in (("fast", fast), ("slow", slow)):
            got = merger.merge(base, ours, theirs)
            if got.tree is not None:
                # Pick onto the in-memory result too, then commit it as a build does.
                chained = merger.merge(theirs, got.tree, next_theirs)
                tree = chained.tree or got.tree
                parents = (heads[label],) if heads[label] else ()
                commit = format_commit(
                    tree=tree,
                    parents=parents,
                    author=b"Jan Beulich <jbeulich@suse.com> 1700000000 +0100",
                    committer=b"xsabot <xsabot@invalid> 1700000000 +0000",
                    message=b"pick %d\n" % step,
                    encoding=None,
                )
                heads[label] = merger.store.write("commit", commit)
            results[label] = got
        assert results["fast"] == results["slow"]
        slow.store.materialize([results["slow"].tree] if results["slow"].tree else [])
        assert results["slow"] == reference(repo, base, ours, theirs)
    assert heads["fast"] == heads["slow"] != ""
    assert slow.stats.file_merges > 0  # the fallback file merge ran
    assert slow.stats.fallbacks >= fast.stats.fallbacks  # no similarity: merge_trees decides
    assert len(_warnings(caplog)) == 1


# -- errors are the bot's own ----------------------------------------------------------------


def test_a_libgit2_error_in_the_fast_file_merge_is_a_merge_engine_error(
    repo: pygit2.Repository,
) -> None:
    real = libgit2.open_loaded()
    opener = functools.partial(
        libgit2.Functions, real.ffi, _RefusesOnePath(real, b"xen/common/broken.c")
    )
    assert libgit2.load(opener) is not None  # the check merges another path
    store = ObjectStore(repo)
    base, ours, theirs, modes, _ = TRIPLES["distant-lines"]
    entries: list[Entry] = [
        (m, store.write_bin("blob", d)) for m, d in zip(modes, (base, ours, theirs), strict=True)
    ]
    merger = FileMerger(store, opener=opener)
    assert merger.merge(b"xen/common/fine.c", *entries) is not None
    with pytest.raises(MergeEngineError) as raised:
        merger.merge(b"xen/common/broken.c", *entries)
    assert str(raised.value) == (
        "libgit2 could not merge xen/common/broken.c: invalid argument: 'ours'"
    )
    assert isinstance(raised.value, GitError) and raised.value.exit_status == 2


@pytest.mark.parametrize("in_memory", [True, False], ids=["blobs-in-memory", "blobs-on-disk"])
def test_a_repository_error_in_the_fallback_file_merge_is_a_merge_engine_error(
    repo: pygit2.Repository, in_memory: bool
) -> None:
    store = ObjectStore(repo)
    base, ours, theirs, modes, _ = TRIPLES["distant-lines"]
    entries: list[Entry] = [
        (m, store.write_bin("blob", d) if in_memory else repo.create_blob(d).raw)
        for m, d in zip(modes, (base, ours, theirs), strict=True)
    ]
    objects = Path(repo.path, "objects")
    shutil.rmtree(objects)
    objects.write_text("not a directory\n")  # the disk went bad under the bot
    with pytest.raises(MergeEngineError, match=r"xen/arch/x86/mm\.c"):
        FileMerger(store, opener=_no_libgit2()).merge(b"xen/arch/x86/mm.c", *entries)
