"""Reading files of the manifests directory: never through a symbolic link, never unbounded.

Manifests and patch files come from merge requests. A symbolic link committed there would make
the bot read any file of the host it can: a manifest's content shows up in lint messages (which
`plan --mr` posts as a merge request comment), a patch's in published commits. So links are
refused before anything is read, on every component of a patch path (a linked directory leads
out as surely as a linked file), by opening each component with `O_NOFOLLOW` relative to the
one before: nothing can swap a link in between a check and the read. Only regular files are
read (a FIFO would block the pass forever), and only up to a cap.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path


class FileRefused(Exception):
    """The file is not read: a link, not a regular file, too large, or cannot be opened."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing  # it (or a directory on its path) does not exist


class TooLarge(FileRefused):
    """The file is larger than the cap."""


# Advisory patches are tens of KiB; the largest XSA patch series are a few MiB.
MAX_PATCH_BYTES = 16 << 20

_OPEN = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
_DIRECTORY = _OPEN | os.O_DIRECTORY


def read_file(path: Path, limit: int) -> bytes:
    """The bytes of the regular file `path` (its last component not a link), at most `limit`."""
    try:
        fd = os.open(path, _OPEN | os.O_NONBLOCK)
    except (OSError, ValueError) as exc:
        raise _refusal(exc, path.name, _is_link(path)) from None
    return _read(fd, limit, path.name)


def read_beneath(root: Path, relative: str, limit: int) -> bytes:
    """The bytes of the regular file `relative` (`/`-separated) under `root`, at most `limit`,
    with no component a link; `..` is resolved in the text and never leads above `root`.
    `root` itself is the operator's and may be a link."""
    return _read(_open_beneath(root, relative), limit, relative)


def check_beneath(root: Path, relative: str, limit: int) -> None:
    """Raise `FileRefused` where `read_beneath` would, without reading the file."""
    fd = _open_beneath(root, relative)
    try:
        _check(fd, limit, relative)
    finally:
        os.close(fd)


def _open_beneath(root: Path, relative: str) -> int:
    # Lexically: with no link on the way, `a/../b` is `b` for the kernel too.
    *dirs, name = posixpath.normpath("/" + relative.lstrip("/")).split("/")[1:]
    if not name:
        raise FileRefused(f"`{relative}` does not name a file inside the manifests directory")
    try:
        fd = os.open(root, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)
    except (OSError, ValueError) as exc:
        raise _refusal(exc, str(root), linked=False) from None
    try:
        for i, part in enumerate(dirs):
            try:
                inner = os.open(part, _DIRECTORY, dir_fd=fd)
            except (OSError, ValueError) as exc:
                shown = "/".join(dirs[: i + 1])
                raise _refusal(exc, shown, _is_link(part, fd)) from None
            os.close(fd)
            fd = inner
        try:
            return os.open(name, _OPEN | os.O_NONBLOCK, dir_fd=fd)
        except (OSError, ValueError) as exc:
            raise _refusal(exc, relative, _is_link(name, fd)) from None
    finally:
        os.close(fd)


def _check(fd: int, limit: int, shown: str) -> None:
    try:
        info = os.fstat(fd)
    except OSError as exc:
        raise FileRefused(f"cannot read `{shown}`: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"`{shown}` is not a regular file")
    if info.st_size > limit:
        raise TooLarge(f"`{shown}` is larger than {_size(limit)}")


def _read(fd: int, limit: int, shown: str) -> bytes:
    try:
        _check(fd, limit, shown)
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limit + 1)  # never more than the cap, even if it grew meanwhile
    except OSError as exc:
        raise FileRefused(f"cannot read `{shown}`: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge(f"`{shown}` is larger than {_size(limit)}")
    return data


def _refusal(exc: OSError | ValueError, shown: str, linked: bool) -> FileRefused:
    if linked:
        return FileRefused(f"`{shown}` is a symbolic link; links are never followed")
    why = exc.strerror if isinstance(exc, OSError) else str(exc)
    missing = isinstance(exc, FileNotFoundError)
    return FileRefused(f"cannot open `{shown}`: {why}", missing=missing)


def _is_link(name: str | Path, dir_fd: int | None = None) -> bool:
    """Whether `name` (in the directory `dir_fd`) is a symbolic link; False if it cannot say."""
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except (OSError, ValueError):
        return False


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 and not limit % (1 << 20) else f"{limit} bytes"
