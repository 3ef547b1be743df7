"""A tree as plain files for the check: which tree a commit has, and its files in a directory.

Archiving a tree (not a commit) leaves `export-subst` files as they are in the tree, so the
export depends on the tree ID only. The "tar" filter refuses absolute and `..` member names;
symlinks are kept as they are (the operator's build runs in there anyway).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

from bot.git.runner import git


def export_tree(repo: Path, tree: str, dest: Path) -> None:
    """Write `tree`'s files into `dest`, which must not exist yet (no `.git` in it)."""
    data = git(["archive", "--format=tar", tree], cwd=repo).stdout
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest, filter="tar")


def tree_of(repo: Path, commit: str) -> str | None:
    """The tree of `commit` in `repo`; None if the repository does not have the commit."""
    proc = git(["rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}"], cwd=repo, check=False)
    return proc.stdout.decode().strip() or None


def headers_between(repo: Path, old: str, new: str) -> int:
    """How many C headers differ between two trees (what a move of a build directory from
    one to the other makes the build redo)."""
    out = git(["diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new], cwd=repo).stdout
    return sum(path.endswith(b".h") for path in out.split(b"\0"))


def update_tree(repo: Path, old: str, new: str, dest: Path) -> list[str]:
    """Turn `dest`, which holds `old`'s files (and whatever a build left there), into `new`'s
    by touching only the files that differ: changed ones are written anew (so only they get a
    new mtime, and make rebuilds only what they touch), deleted ones removed. Returns the paths
    written or removed. Build products and other files neither tree has are left alone."""
    out = git(["diff-tree", "-r", "-z", "--no-renames", old, new], cwd=repo).stdout
    fields = out.split(b"\0")
    changes: list[tuple[str, str, str]] = []  # (status, new mode, new blob), path
    paths: list[str] = []
    for i in range(0, len(fields) - 1, 2):
        meta, raw = fields[i].decode(), fields[i + 1]
        if not meta.startswith(":"):
            continue
        _old_mode, new_mode, _old_sha, new_sha, status = meta[1:].split()
        changes.append((status, new_mode, new_sha))
        paths.append(_safe_path(raw.decode("utf-8", "surrogateescape")))
    root = dest.resolve()
    for (status, _mode, _sha), path in zip(changes, paths, strict=True):
        if status == "D":
            _drop(root, path)
    wanted = [
        (path, mode, sha)
        for (status, mode, sha), path in zip(changes, paths, strict=True)
        if status != "D" and mode != "160000"  # a submodule: the export has no files of it
    ]
    blobs = _read_blobs(repo, [sha for _path, _mode, sha in wanted])
    for path, mode, sha in wanted:
        target = _inside(root, path)
        _drop(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            target.symlink_to(blobs[sha].decode("utf-8", "surrogateescape"))
        else:
            target.write_bytes(blobs[sha])
            target.chmod(0o755 if mode == "100755" else 0o644)
    return paths


def _safe_path(path: str) -> str:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a path inside a tree: {path!r}")
    return path


def _inside(root: Path, path: str) -> Path:
    """`root/path`, refused when a directory on the way is a symlink leading out of `root`
    (a tree may hold such a link; writing through it would write outside the export)."""
    target = root / path
    parent = Path(os.path.realpath(target.parent))
    if parent != root and not parent.is_relative_to(root):
        raise ValueError(f"{path!r} leads out of the export")
    return target


def _drop(root: Path, path: str) -> None:
    target = _inside(root, path)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():  # a directory the new tree has a file in place of
        shutil.rmtree(target)


def _read_blobs(repo: Path, shas: list[str]) -> dict[str, bytes]:
    unique = sorted(set(shas))
    if not unique:
        return {}
    data = git(["cat-file", "--batch"], cwd=repo, input="".join(f"{s}\n" for s in unique).encode())
    out = data.stdout
    blobs: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        sha, kind, size = out[pos:end].decode().split()
        if kind != "blob":
            raise ValueError(f"{sha} is a {kind}, not a blob")
        start = end + 1
        blobs[sha] = out[start : start + int(size)]
        pos = start + int(size) + 1
    return blobs


def changed_files(repo: Path, old: str, new: str) -> list[str]:
    """The files added or modified from tree (or commit) `old` to `new`."""
    out = git(
        ["diff-tree", "-r", "-z", "--no-renames", "--name-only", "--diff-filter=AM", old, new],
        cwd=repo,
    ).stdout
    return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]
