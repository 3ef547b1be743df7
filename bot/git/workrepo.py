"""The bot's own bare repository per tree, under the state dir: where builds happen.

Upstream refs are fetched under `refs/upstream/`, the mirror's under `refs/mirror/`. A local
upstream is borrowed through `objects/info/alternates`, so a Xen clone is never copied and
never written to. The bot writes objects only here, and refs only to the mirror it owns.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pygit2

from bot.errors import GitError, SetupError
from bot.git.runner import git

UPSTREAM = "refs/upstream/"
MIRROR = "refs/mirror/"
NOTES = "refs/notes/xsabot"

log = logging.getLogger(__name__)


def is_local(location: str) -> bool:
    return "://" not in location and not location.startswith("git@")


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

    def borrow_objects(self, upstream: Path) -> None:
        """Read a local upstream's objects in place instead of copying them."""
        objects = str(_objects_dir(upstream))
        alternates = self.path / "objects" / "info" / "alternates"
        current = alternates.read_text().split() if alternates.exists() else []
        if objects not in current:
            alternates.parent.mkdir(parents=True, exist_ok=True)
            alternates.write_text("\n".join([*current, objects]) + "\n")
            self.repo = pygit2.Repository(str(self.path))

    def fetch_upstream(self, location: str, *, timeout: float = 1800) -> None:
        if is_local(location):
            path = Path(location)
            if not path.exists():
                raise SetupError(f"upstream {location}: no such directory")
            self.borrow_objects(path)
            location = str(path.resolve())
        self._fetch(
            location,
            [f"+refs/heads/*:{UPSTREAM}heads/*", f"+refs/tags/*:{UPSTREAM}tags/*"],
            timeout,
        )

    def fetch_mirror(
        self, location: str, namespace: str, *, create: bool, timeout: float = 600
    ) -> None:
        """Fetch the bot's branches and notes from the mirror. A missing local mirror is made
        when `create` (a pass that publishes); otherwise it is read as empty, and left unmade
        (`plan` and `status` write nothing)."""
        if is_local(location) and not Path(location, "HEAD").exists():
            where = Path(location)
            if where.exists() and (not where.is_dir() or any(where.iterdir())):
                raise SetupError(f"mirror {location}: exists but is not a bare git repository")
            if not create:
                for ref in list(self.repo.references):
                    if ref.startswith(MIRROR):
                        self.repo.references.delete(ref)
                return
            git(["init", "--bare", "-q", location])
        self._fetch(
            location,
            [
                f"+refs/heads/{namespace}*:{MIRROR}heads/{namespace}*",
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
        try:
            git([*args, location, *refspecs], cwd=self.path, timeout=timeout)
        except GitError as exc:
            # A mirror without notes yet is not an error; anything else is.
            if "couldn't find remote ref" not in str(exc):
                raise
            git([*args, location, *refspecs[:-1]], cwd=self.path, timeout=timeout)

    def write_ref(self, location: str, commit: str, ref: str, *, replace: bool) -> None:
        """Point `ref` of the repository at `location` to `commit`, sending the objects it
        lacks. Unless `replace`, a ref that exists already is refused, not overwritten."""
        lease = "--force" if replace else f"--force-with-lease={ref}:"
        try:
            git(["push", "--quiet", lease, location, f"{commit}:{ref}"], cwd=self.path)
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
        out = git(["ls-remote", "--refs", location, *patterns], cwd=self.path).stdout.decode()
        return {ref: sha for sha, ref in (line.split("\t", 1) for line in out.splitlines())}

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether `descendant` extends `ancestor`; False when either is not here."""
        if ancestor == descendant:
            return True
        try:
            return bool(self.repo.descendant_of(descendant, ancestor))
        except (KeyError, ValueError, pygit2.GitError):
            return False
