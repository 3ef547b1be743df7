"""Publishing to the mirror: pseudo-merges, build records as notes, one atomic push, and
a local mirror's HEAD.

Every commit made here is deterministic too (dates come from the inputs), so two replicas
that publish the same builds make the same commits. All refs of a pass go in one
`git push --atomic`, each with `--force-with-lease=<ref>:<expected>`: if anyone moved any of
them since we fetched, nothing at all is published.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.core.record import BuildRecord, UnreadableRecord, note_records
from bot.core.refs import WritableRefs
from bot.git.commits import format_commit, identity_line, parse_commit
from bot.git.locks import STALE_LOCK_AGE, lock_in_the_way
from bot.git.notes import find_note, notes_tree
from bot.git.objects import ObjectStore
from bot.git.runner import git, git_text
from bot.git.workrepo import WorkRepo, refuse_option


@dataclass(frozen=True)
class RefUpdate:
    ref: str  # full name in the mirror, e.g. refs/heads/xsa/4.19
    new: str
    old: str | None  # what we saw in the mirror; None = must not exist yet


@dataclass(frozen=True)
class PushResult:
    ok: bool
    message: str = ""


def read_note(work: WorkRepo, commit: str, notes: str | None) -> str | None:
    """The text of the note on `commit` in the fetched mirror notes, if any, whatever the
    notes tree's fan-out (`bot.git.notes`)."""
    if notes is None:
        return None
    data = find_note(work.repo, notes, commit)
    return None if data is None else data.decode("utf-8", "replace")


def read_record(
    work: WorkRepo, tip: str, notes: str | None, branch: str
) -> BuildRecord | UnreadableRecord | None:
    """The build record of `branch` attached to `tip`: None if there is none, why not if
    there is one that cannot be read."""
    text = read_note(work, tip, notes)
    return note_records(text).get(branch) if text else None


def _date_of(store: ObjectStore, commit: str) -> bytes:
    return parse_commit(store.read(commit)[1]).committer_date


def _later(store: ObjectStore, commits: list[str]) -> bytes:
    dates = [_date_of(store, c) for c in commits]
    return max(dates, key=lambda d: int(d.split(b" ")[0]))


def pseudo_merge(
    store: ObjectStore, *, published: str, build: str, message: str, name: str, email: str
) -> str:
    tree = parse_commit(store.read(build)[1]).tree
    ident = identity_line(name, email, _later(store, [published, build]))
    raw = format_commit(
        tree=tree,
        parents=(published, build),
        author=ident,
        committer=ident,
        message=message.encode(),
    )
    return store.write("commit", raw)


def notes_commit(
    store: ObjectStore,
    *,
    old: str | None,
    notes: dict[str, str],
    name: str,
    email: str,
) -> str:
    """A commit of the notes ref with `notes` ({commit: text}) added to what `old` had, in
    a layout `git notes` reads (`bot.git.notes.notes_tree`)."""
    parents: tuple[str, ...] = ()
    old_tree = None
    if old is not None:
        parents = (old,)
        old_tree = parse_commit(store.read(old)[1]).tree
    blobs = {commit: store.write("blob", text.encode()) for commit, text in notes.items()}
    tree = notes_tree(store, old_tree, blobs)
    ident = identity_line(name, email, _later(store, list(notes)))
    message = "xsabot: build records\n\n" + "".join(f"{c}\n" for c in sorted(notes))
    return store.write(
        "commit",
        format_commit(
            tree=tree, parents=parents, author=ident, committer=ident, message=message.encode()
        ),
    )


def push(
    work: WorkRepo,
    mirror: str,
    updates: list[RefUpdate],
    *,
    writable: WritableRefs,
    timeout: float = 600,
) -> PushResult:
    """All `updates` in one atomic push, each leased on the value the bot last saw. A ref
    outside `writable` fails the whole push before anything is sent."""
    if not updates:
        return PushResult(True)
    refused = writable.refused([u.ref for u in updates])
    if refused:
        return PushResult(
            False,
            "refused to write outside the bot's refs; nothing was published: " + ", ".join(refused),
        )
    args = ["push", "--atomic", "--porcelain", "--no-verify"]
    args += [f"--force-with-lease={u.ref}:{u.old or ''}" for u in updates]
    args += ["--", refuse_option(mirror)]
    args += [f"{u.new}:{u.ref}" for u in updates]
    proc = git(args, cwd=work.path, timeout=timeout, check=False)
    if proc.returncode == 0:
        return PushResult(True)
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    lock = lock_in_the_way(out)
    if "stale info" in out or "fetch first" in out:
        reason = "the mirror moved since it was fetched (a lease failed); nothing was published"
    elif lock is not None:
        reason = (
            f"push failed: the git lock {lock} is in the way (a git is running there, or one "
            f"was killed: a pass removes its own refs' locks from a local mirror once they are "
            f"{STALE_LOCK_AGE:.0f} s old); nothing was published"
        )
    else:
        reason = "push failed; nothing was published"
    kinds = ("!", "error:", "fatal:", "remote: error:")
    lines = [line.strip() for line in out.splitlines() if line.startswith(kinds)]
    return PushResult(False, reason + (": " + "; ".join(lines) if lines else ""))


def newest_line(branches: list[str]) -> str | None:
    """The branch of the newest line by version (`xsa/4.22` over `xsa/4.9`), for a
    mirror's HEAD; a branch without a version (`xsa/master`) only when no other has one."""
    if not branches:
        return None

    def key(branch: str) -> tuple[bool, tuple[int, ...], str]:
        numbers = tuple(int(n) for n in re.findall(r"\d+", branch))
        return (bool(numbers), numbers, branch)

    return max(branches, key=key)


def point_head(mirror: str, namespace: str) -> str | None:
    """Point a local mirror's HEAD at its newest line's branch, so a clone checks out a real
    branch (a bare mirror made by `git init` names a `master` it never has). Writes only when
    HEAD names something else; returns the branch HEAD names now, or None if there is none.
    A remote mirror's HEAD cannot be set by a push: its operator sets the forge's default
    branch."""
    where = refuse_option(str(Path(mirror).resolve()))
    listed = git_text(
        [f"--git-dir={where}", "for-each-ref", "--format=%(refname)", f"refs/heads/{namespace}"]
    )
    branches = [ref.removeprefix("refs/heads/") for ref in listed.splitlines() if ref]
    newest = newest_line(branches)
    if newest is None:
        return None
    head = git([f"--git-dir={where}", "symbolic-ref", "-q", "HEAD"], check=False)
    if head.stdout.decode().strip() != f"refs/heads/{newest}":
        git([f"--git-dir={where}", "symbolic-ref", "HEAD", f"refs/heads/{newest}"])
    return newest
