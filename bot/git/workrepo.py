"""The bot's own bare repository per tree, under the state dir: where builds happen.

Upstream refs are fetched under `refs/upstream/`, the mirror's under `refs/mirror/`. A local
upstream is borrowed through `objects/info/alternates`, so a Xen clone is never copied and
never written to. Only the current upstream is borrowed: when it moves or goes, the refs
fetched while another one was borrowed are forgotten and fetched again (their objects may
have been only there). The bot writes objects only here, and refs only to the mirror it owns.

Locations reach git after `--`, never where git would read them as an option.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

import pygit2

from bot.core.refs import WritableRefs
from bot.errors import GitError, SetupError
from bot.git.locks import remove_stale_locks
from bot.git.runner import git

log = logging.getLogger(__name__)

UPSTREAM = "refs/upstream/"
MIRROR = "refs/mirror/"
NOTES = "refs/notes/xsabot"
NOTIFIED = "refs/xsabot/notified"


# What git says when a ref's objects are not all there (a borrowed repository is gone).
_MISSING_OBJECTS = re.compile(
    r"bad object|did not send all necessary objects|missing (blob|tree|commit) object"
    r"|unable to read [0-9a-f]{40}|Could not read [0-9a-f]{40}"
)
# receive-pack keeps a push's objects in a quarantine directory until its refs are updated;
# a push killed with SIGKILL (or the machine going down) leaves it behind.
PUSH_LEFTOVERS = "tmp_objdir-incoming-*"
PUSH_LEFTOVER_AGE = 3600.0


def is_local(location: str) -> bool:
    return "://" not in location and not location.startswith("git@")


def refuse_option(location: str) -> str:
    """`location`, unless git could read it as an option (the config refuses those first)."""
    if location.startswith("-"):
        raise SetupError(f"{location!r}: a repository location may not start with '-'")
    return location


def _kind(obj: pygit2.Object) -> str:
    """What a tag ends at, peeled as far as it goes: `tree`, `blob`."""
    while isinstance(obj, pygit2.Tag):
        obj = obj.get_object()
    return str(obj.type_str)


def _objects_dir(path: Path) -> Path:
    for candidate in (path / ".git" / "objects", path / "objects"):
        if candidate.is_dir():
            return candidate.resolve()
    raise SetupError(f"{path}: not a git repository")


class WorkRepo:
    @classmethod
    def for_tree(cls, state: Path, tree: str) -> WorkRepo:
        """The work repository of `tree` under the state dir."""
        return cls(state / "repos" / f"{tree}.git")

    def __init__(self, path: Path) -> None:
        self.path = path
        if not (path / "HEAD").exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            git(["init", "--bare", "-q", str(path)])
            # Objects the bot makes are packed on flush; keep git from repacking under us.
            git(["config", "gc.auto", "0"], cwd=path)
        try:
            self.repo = pygit2.Repository(str(path))
        except pygit2.GitError as exc:
            raise SetupError(
                f"{path}: the bot's work repository is damaged ({exc}); remove it, "
                "the next pass makes it again"
            ) from None
        remove_stale_locks(path, ("refs/", "HEAD"))  # all its refs are the bot's

    @property
    def _alternates(self) -> Path:
        return self.path / "objects" / "info" / "alternates"

    def borrowed(self) -> list[str]:
        """The object directories this repository reads in place (`objects/info/alternates`)."""
        if not self._alternates.exists():
            return []
        return [line for line in self._alternates.read_text().splitlines() if line.strip()]

    def borrow_objects(self, upstream: Path | None) -> None:
        """Read a local upstream's objects in place instead of copying them, and no other
        repository's: None borrows nothing (a remote upstream). Objects a fetched ref needs
        may have been only in a repository no longer borrowed, so its refs are forgotten then,
        and the next fetches bring what is missing (from the new upstream or the mirror)."""
        wanted = [str(_objects_dir(upstream))] if upstream is not None else []
        current = self.borrowed()
        if current == wanted:
            return
        if wanted:
            self._alternates.parent.mkdir(parents=True, exist_ok=True)
            self._alternates.write_text("".join(f"{line}\n" for line in wanted))
        else:
            self._alternates.unlink(missing_ok=True)
        self.repo = pygit2.Repository(str(self.path))
        dropped = sorted(set(current) - set(wanted))
        if dropped:
            log.info("%s: no longer borrowing %s", self.path, ", ".join(dropped))
            self.forget_fetched()

    def forget_fetched(self) -> None:
        """Delete the refs fetched from the upstream and the mirror (not the objects): the
        next fetch makes them again, bringing whatever objects they lack."""
        for name in list(self.repo.references):
            if name.startswith((UPSTREAM, MIRROR)):
                self.repo.references.delete(name)

    def fetch_upstream(self, location: str, *, timeout: float = 1800) -> None:
        if is_local(location):
            path = Path(location)
            if not path.exists():
                raise SetupError(f"upstream {location}: no such directory")
            self.borrow_objects(path)
            location = str(path.resolve())
        else:
            self.borrow_objects(None)
        self._fetch(
            location,
            [f"+refs/heads/*:{UPSTREAM}heads/*", f"+refs/tags/*:{UPSTREAM}tags/*"],
            timeout,
        )

    def fetch_mirror(
        self, location: str, namespace: str, *, create: bool, timeout: float = 600
    ) -> None:
        """Fetch the bot's branches, notes and notification state from the mirror. A missing
        local mirror is made when `create` (a pass that publishes); otherwise it is read as
        empty, and left unmade
        (`plan` and `status` write nothing). A pass that publishes also removes what its own
        killed pushes left in a local mirror: quarantine directories (`remove_push_leftovers`)
        and stale locks of its refs (`bot.git.locks`)."""
        if is_local(location) and not Path(location, "HEAD").exists():
            where = Path(location)
            if where.exists() and (not where.is_dir() or any(where.iterdir())):
                raise SetupError(f"mirror {location}: exists but is not a bare git repository")
            if not create:
                for ref in list(self.repo.references):
                    if ref.startswith(MIRROR):
                        self.repo.references.delete(ref)
                return
            git(["init", "--bare", "-q", "--", refuse_option(location)])
        elif is_local(location) and create:
            remove_push_leftovers(Path(location))
            remove_stale_locks(Path(location), (*WritableRefs.of(namespace).prefixes(), "HEAD"))
        self._fetch(
            location,
            [
                f"+refs/heads/{namespace}*:{MIRROR}heads/{namespace}*",
                # A glob, so that a mirror without it is no error (`refs/xsabot/notified`).
                f"+{NOTIFIED}*:{MIRROR}xsabot/notified*",
                f"+{NOTES}:{MIRROR}notes/xsabot",
            ],
            timeout,
            prune=True,
        )

    def _fetch(
        self, location: str, refspecs: list[str], timeout: float, prune: bool = False
    ) -> None:
        args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]
        if prune:
            args.append("--prune")
        args += ["--", refuse_option(location)]
        try:
            self._fetch_once(args, refspecs, timeout)
        except GitError as exc:
            if not _MISSING_OBJECTS.search(str(exc)):
                raise
            # A ref whose objects were in a repository borrowed once and gone since (or not
            # found in it any more): forget the fetched refs, and fetch again.
            log.warning("%s: refs with missing objects, fetching them again", self.path)
            self.forget_fetched()
            self._fetch_once(args, refspecs, timeout)

    def _fetch_once(self, args: list[str], refspecs: list[str], timeout: float) -> None:
        try:
            git([*args, *refspecs], cwd=self.path, timeout=timeout)
        except GitError as exc:
            # A mirror without notes yet is not an error; anything else is.
            if "couldn't find remote ref" not in str(exc):
                raise
            git([*args, *refspecs[:-1]], cwd=self.path, timeout=timeout)

    def write_ref(self, location: str, commit: str, ref: str, *, replace: bool) -> None:
        """Point `ref` of the repository at `location` to `commit`, sending the objects it
        lacks. Unless `replace`, a ref that exists already is refused, not overwritten."""
        lease = "--force" if replace else f"--force-with-lease={ref}:"
        try:
            git(
                ["push", "--quiet", lease, "--", refuse_option(location), f"{commit}:{ref}"],
                cwd=self.path,
            )
        except GitError as exc:
            if not replace and "stale info" in str(exc):
                raise SetupError(f"{ref} exists in {location}; give --force to move it") from None
            raise

    def resolve(self, ref: str) -> str | None:
        """The commit a ref points to (tags peeled), or None: also for a ref to a tree or a
        blob (a tag can name any object), which is no branch's base or source."""
        try:
            obj = self.repo.revparse_single(ref)
        except (KeyError, pygit2.InvalidSpecError):
            return None
        try:
            peeled = obj.peel(pygit2.Commit)
        except pygit2.GitError:  # InvalidSpecError for a tree or blob, GitError for a tag of one
            log.warning("%s names a %s, not a commit", ref, _kind(obj))
            return None
        return str(peeled.id)

    def upstream_kind(self, name: str, kind: str) -> str | None:
        """What upstream's tag or branch `name` ends at, peeled (`commit`, `tree`, `blob`), or
        None when there is no such ref."""
        try:
            return _kind(self.repo.revparse_single(f"{UPSTREAM}{kind}/{name}"))
        except (KeyError, pygit2.InvalidSpecError):
            return None

    def upstream(self, name: str, kind: str) -> str | None:
        """The commit of upstream's tag or branch `name` (`kind`: tags, heads), or None when
        there is none or it names no commit."""
        return self.resolve(f"{UPSTREAM}{kind}/{name}")

    def mirror_branch(self, branch: str) -> str | None:
        return self.resolve(f"{MIRROR}heads/{branch}")

    def mirror_notes(self) -> str | None:
        return self.resolve(f"{MIRROR}notes/xsabot")

    def upstream_refs(self, pattern: str) -> dict[str, str]:
        """Fetched upstream refs matching `pattern` (e.g. `tags/RELEASE-*`), not peeled."""
        out = git(
            ["for-each-ref", "--format=%(objectname) %(refname)", f"{UPSTREAM}{pattern}"],
            cwd=self.path,
        ).stdout.decode()
        return {
            "refs/" + ref[len(UPSTREAM) :]: sha
            for sha, ref in (line.split(" ", 1) for line in out.splitlines())
        }

    def remote_refs(self, location: str, patterns: list[str]) -> dict[str, str]:
        """Refs of a remote matching `patterns`, as `git ls-remote` sees them now."""
        args = ["ls-remote", "--refs", "--", refuse_option(location), *patterns]
        out = git(args, cwd=self.path).stdout.decode()
        return {ref: sha for sha, ref in (line.split("\t", 1) for line in out.splitlines())}

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether `descendant` extends `ancestor`; False when either is not here."""
        if ancestor == descendant:
            return True
        try:
            return bool(self.repo.descendant_of(descendant, ancestor))
        except (KeyError, ValueError, pygit2.GitError):
            return False


def remove_push_leftovers(mirror: Path, *, older_than: float = PUSH_LEFTOVER_AGE) -> list[Path]:
    """Remove the quarantine directories (`objects/tmp_objdir-incoming-*`) that pushes killed
    mid-way left in a local mirror: those made by this user and in which nothing was written
    for `older_than` seconds. A push still running (another replica's) writes into its own as
    the pack arrives and is far younger; one whose quarantine went anyway fails whole, and is
    made again by the next pass: receive-pack updates no ref without its objects."""
    try:
        objects = _objects_dir(mirror)
    except SetupError:
        return []
    removed: list[Path] = []
    now = time.time()
    for leftover in sorted(objects.glob(PUSH_LEFTOVERS)):
        try:
            if leftover.is_symlink() or not leftover.is_dir():
                continue
            if leftover.lstat().st_uid != os.geteuid():
                continue
            if now - _last_written(leftover) < older_than:
                continue
            shutil.rmtree(leftover)
        except OSError as exc:  # gone meanwhile, or not ours to remove: leave it
            log.info("push leftover %s left alone: %s", leftover, exc.strerror)
            continue
        log.warning("removed %s, left by an interrupted push", leftover)
        removed.append(leftover)
    return removed


def _last_written(directory: Path) -> float:
    """The newest modification time of `directory` and anything in it."""
    newest = directory.lstat().st_mtime
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest
