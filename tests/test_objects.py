"""ObjectStore: objects in memory until one pack, readable by git and libgit2 alike."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
import pytest

from bot.git.objects import ObjectStore, object_id
from bot.git.pack import build_pack
from bot.git.trees import (
    BLOB,
    EXECUTABLE,
    GITLINK,
    SYMLINK,
    TREE,
    format_tree,
    parse_tree,
    sort_entries,
)


def _git(repo: Path | str, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        check=True,
        capture_output=True,
        input=input,
    ).stdout.decode()


@pytest.fixture
def repo(tmp_path: Path) -> pygit2.Repository:
    return pygit2.init_repository(str(tmp_path / "repo.git"), bare=True)


def _packs(repo: pygit2.Repository) -> set[str]:
    return {p.name for p in Path(repo.path, "objects", "pack").glob("*.pack")}


def _loose(repo: pygit2.Repository) -> list[Path]:
    objects = Path(repo.path, "objects")
    return [p for p in objects.glob("??/*") if p.parent.name not in ("info", "pack")]


def _commit(tree: str, parents: tuple[str, ...], message: str) -> bytes:
    lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
    lines += [
        "author Jan Beulich <jbeulich@suse.com> 1700000000 +0100",
        "committer xsabot <xsabot@invalid> 1700000000 +0100",
    ]
    return ("\n".join(lines) + "\n\n" + message).encode()


def _make_history(store: ObjectStore) -> list[str]:
    """A few commits of blobs and nested trees, made in memory only; returns the commits."""
    commits: list[str] = []
    for i in range(3):
        small = store.write_bin("blob", b"line %d\n" % i)
        big = store.write_bin("blob", bytes(range(256)) * (300 + i))  # multi-byte size header
        sub = store.write_tree_bin(sort_entries({b"x.c": (BLOB, small), b"big": (BLOB, big)}))
        root = store.write_tree_bin(
            sort_entries({b"xen": (TREE, sub), b"run.sh": (EXECUTABLE, small)})
        )
        raw = _commit(root.hex(), tuple(commits[-1:]), f"commit {i}\n")
        commits.append(store.write("commit", raw))
    return commits


def test_object_ids_are_git_s(repo: pygit2.Repository) -> None:
    store = ObjectStore(repo)
    for kind, data in [("blob", b""), ("blob", b"hello\n"), ("tree", b"")]:
        expected = _git(repo.path, "hash-object", "-t", kind, "--stdin", input=data).strip()
        assert object_id(kind, data) == expected  # type: ignore[arg-type]
        assert store.write(kind, data) == expected  # type: ignore[arg-type]


def test_written_objects_read_back_from_memory_before_any_flush(repo: pygit2.Repository) -> None:
    store = ObjectStore(repo)
    oid = store.write("blob", b"in memory\n")
    assert store.read(oid) == ("blob", b"in memory\n")
    assert store.contains(oid)
    assert oid not in repo.odb
    assert store.pending == 1


def test_trees_are_written_in_git_s_order(repo: pygit2.Repository) -> None:
    store = ObjectStore(repo)
    blob = store.write_bin("blob", b"x\n")
    names = [b"a", b"a-b", b"a.c", b"a0", b"b"]
    entries = {name: (BLOB, blob) for name in names}
    entries[b"a"] = (TREE, store.write_bin("tree", format_tree({b"f": (BLOB, blob)})))
    entries[b"link"] = (SYMLINK, blob)
    entries[b"mod"] = (GITLINK, bytes.fromhex("1" * 40))
    data = format_tree(sort_entries(entries))
    store.flush()
    mktree = "".join(
        f"{mode.decode().rjust(6, '0')} {kind} {oid.hex()}\t{name.decode()}\n"
        for name, (mode, oid) in entries.items()
        for kind in ["tree" if mode == TREE else "commit" if mode == GITLINK else "blob"]
    )
    assert object_id("tree", data) == _git(repo.path, "mktree", input=mktree.encode()).strip()
    assert parse_tree(data) == entries
    assert list(parse_tree(data)) == [b"a-b", b"a.c", b"a", b"a0", b"b", b"link", b"mod"]


def test_flush_writes_one_pack_that_git_and_libgit2_read(repo: pygit2.Repository) -> None:
    store = ObjectStore(repo)
    commits = _make_history(store)
    made = dict(store._new)  # what must arrive, by binary ID
    assert _packs(repo) == set()

    assert store.flush() == len(made)

    assert len(_packs(repo)) == 1
    assert _loose(repo) == []
    assert store.pending == 0
    fresh = pygit2.Repository(repo.path)
    for oid, (kind, data) in made.items():
        number, raw = fresh.odb.read(oid.hex())
        assert (number, raw) == ({"commit": 1, "tree": 2, "blob": 3}[kind], data)
    _git(repo.path, "update-ref", "HEAD", commits[-1])  # fsck: all reachable
    fsck = subprocess.run(
        ["git", "--git-dir", repo.path, "fsck", "--strict", "--no-dangling"],
        capture_output=True,
        text=True,
    )
    assert fsck.returncode == 0, fsck.stderr
    assert fsck.stdout == fsck.stderr == ""


def test_flush_of_roots_writes_only_what_they_reach(repo: pygit2.Repository) -> None:
    store = ObjectStore(repo)
    commits = _make_history(store)
    stray = store.write("blob", b"a trial merge's leftover\n")

    store.flush(roots=[commits[0]])

    assert commits[0] in repo.odb
    assert commits[1] not in repo.odb and stray not in repo.odb
    assert store.contains(commits[1]) and store.contains(stray)  # still readable
    store.flush(roots=[commits[-1]])
    assert commits[-1] in repo.odb and stray not in repo.odb
    assert len(_packs(repo)) == 2


def test_flush_skips_objects_the_repository_has(repo: pygit2.Repository) -> None:
    existing = str(repo.create_blob(b"already there\n"))
    store = ObjectStore(repo)
    assert store.write("blob", b"already there\n") == existing
    assert store.flush() == 0
    assert _packs(repo) == set()
    assert store.flush() == 0  # nothing pending: no empty pack either


def test_materialize_writes_what_libgit2_needs_loose(repo: pygit2.Repository) -> None:
    store = ObjectStore(repo)
    commits = _make_history(store)
    tree = store.read(commits[1])[1].split(b"\n")[0].split()[1].decode()

    written = store.materialize([tree])

    assert written == 4  # root tree, subtree, two blobs of that commit
    assert store.loose_writes == written
    assert isinstance(repo[tree], pygit2.Tree)
    assert len(_loose(repo)) == written
    assert commits[1] not in repo.odb


def test_caches_give_the_same_answers(repo: pygit2.Repository) -> None:
    store = ObjectStore(repo, tree_cache_size=1, blob_cache_bytes=10)
    blob = bytes.fromhex(str(repo.create_blob(b"0123456789abcdef")))
    tree = bytes.fromhex(store.write("tree", format_tree({b"f": (BLOB, blob)})))
    for _ in range(2):
        assert store.blob(blob) == b"0123456789abcdef"
        assert store.tree_entries(tree) == {b"f": (BLOB, blob)}
    with pytest.raises(ValueError):
        store.blob(tree)
    with pytest.raises(ValueError):
        store.tree_entries(blob)


def test_pack_format_is_what_index_pack_accepts(tmp_path: Path) -> None:
    objects = [("blob", b"x" * n) for n in (0, 1, 15, 16, 127, 128, 4096, 70000)]
    pack = build_pack(objects, len(objects))
    path = tmp_path / "test.pack"
    path.write_bytes(pack)
    out = subprocess.run(
        ["git", "index-pack", str(path)], check=True, capture_output=True, text=True
    ).stdout
    assert len(out.strip()) == 40
    verify = subprocess.run(
        ["git", "verify-pack", "-v", str(path)], check=True, capture_output=True, text=True
    ).stdout
    for kind, data in objects:
        assert f"{object_id(kind, data)} blob   {len(data)}" in verify  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        build_pack(objects, len(objects) + 1)
