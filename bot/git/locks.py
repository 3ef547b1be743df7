"""Lock files git left behind: a git killed while it updated a ref leaves `<ref>.lock`, and
every later update of that ref fails ("Unable to create '....lock': File exists") until the
file goes. Git holds such a lock for milliseconds (it waits at most a second for one,
`core.filesRefLockTimeout`), so one unchanged for `STALE_LOCK_AGE` is no live git's.

The bot removes only stale locks of refs it owns: any in its work repositories; in a local
mirror those of its own refs (`bot.core.refs.WritableRefs.prefixes`) and of `HEAD`, which it
points at the newest branch and which git locks with the branch it names; in a manifests
repository only the lock of the proposal branch it moves (`refs/heads/xsabot/...`). A younger
lock, or anyone else's, is left alone and reported: the next pass tries again.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

STALE_LOCK_AGE = 120.0

# Where git names a lock file it could not take (the ref update, the push's remote side).
LOCK_IN_THE_WAY = re.compile(r"Unable to create '([^'\n]+\.lock)': File exists")


def remove_stale_locks(
    git_dir: Path, refs: Sequence[str] = ("refs/",), *, older_than: float = STALE_LOCK_AGE
) -> list[Path]:
    """Remove the `*.lock` files of refs under the prefixes `refs` in `git_dir` (a bare
    repository, or a work tree's `.git`) that this user made and nobody wrote for
    `older_than` seconds; return them. A prefix ending in `/` is a directory of refs, one
    without names a ref and the refs below it (`refs/heads/xsa` also holds `xsa/4.19`).
    `HEAD` is one too: git locks it with the branch it names."""
    found: set[Path] = set()
    for prefix in refs:
        if not (prefix == "HEAD" or prefix.startswith("refs/")) or ".." in prefix.split("/"):
            raise ValueError(f"not a ref prefix: {prefix!r}")
        where = git_dir / prefix.rstrip("/")
        if not prefix.endswith("/"):
            found.add(where.with_name(where.name + ".lock"))
        if where.is_dir() and not where.is_symlink():
            found.update(where.rglob("*.lock"))
    return [lock for lock in sorted(found) if remove_if_stale(lock, older_than=older_than)]


def remove_if_stale(lock: Path, *, older_than: float = STALE_LOCK_AGE) -> bool:
    """Remove the lock file `lock` if this user made it and nobody wrote it for `older_than`
    seconds; True if it was removed. A younger one is left, with a warning."""
    try:
        st = lock.lstat()
        if not lock.is_file() or lock.is_symlink() or st.st_uid != os.geteuid():
            return False
        age = time.time() - st.st_mtime
        if age < older_than:
            log.warning("%s: a git lock %.0f s old, left alone for now", lock, age)
            return False
        lock.unlink()
    except OSError:  # not there (any more): nothing to do
        return False
    log.warning("removed %s, left %.0f s ago by a git that was killed", lock, age)
    return True


def lock_in_the_way(message: str) -> Path | None:
    """The lock file git says it could not create in `message`, if any."""
    match = LOCK_IN_THE_WAY.search(message)
    return Path(os.path.normpath(match.group(1))) if match else None
