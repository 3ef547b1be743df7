"""The mirror and the work repository survive what git and operators do to them.

Reproductions of issue 11's storage defects: a notes ref in git's fan-out layout made every
record unreadable and every push fail; pushes killed mid-way left their quarantine
directories in the mirror for ever; a local upstream that moved or went made every later
pass and `xsabot build` fail with "bad object refs/upstream/...".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pygit2

from bot.core.record import note_json
from bot.git.notes import find_note, notes_tree
from bot.git.objects import ObjectStore
from bot.git.workrepo import PUSH_LEFTOVER_AGE, WorkRepo
from tests.conftest import Bot
from tests.gitrepo import XenLike
from tests.manifests import manifest

NOTES = "refs/notes/xsabot"


def _git(repo: Path, *args: str, input: str | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, input=input
    ).stdout.strip()


def _reconcile(bot: Bot, *args: str) -> dict:
    run = bot("reconcile", "--json", *args)
    assert run.status == 0, run.out + run.err
    (branch,) = json.loads(run.out)["branches"]
    return branch


def _tip(bot: Bot) -> str:
    return _git(bot.mirror, "rev-parse", "refs/heads/xsa/4.19")


def _git_notes(repo: Path, *args: str, input: str | None = None) -> str:
    ident = ["-c", "user.name=Operator", "-c", "user.email=op@example.org"]
    return _git(repo, *ident, "notes", "--ref", "xsabot", *args, input=input)


def _note_paths(repo: Path) -> list[str]:
    return _git(repo, "ls-tree", "-r", "--name-only", NOTES).splitlines()


# -- notes in any fan-out ------------------------------------------------------------------


def test_records_are_read_and_written_in_the_fan_out_git_notes_makes(
    bot: Bot, xenlike: XenLike
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    assert _reconcile(bot)["action"] == "create"
    first = _tip(bot)
    # Others annotate 300 objects of the mirror with `git notes` itself, which rewrites the
    # whole tree fanned out (`ab/cdef...`), the bot's own note included.
    blobs = _git(
        bot.mirror,
        "hash-object",
        "-w",
        "--stdin-paths",
        input="".join(f"{path}\n" for path in _write_files(bot.mirror.parent / "objs", 300)),
    ).splitlines()
    for blob in blobs:
        _git_notes(bot.mirror, "add", "-m", f"reviewed {blob}", blob)
    layout = _git(bot.mirror, "ls-tree", NOTES).splitlines()
    assert layout and all(" tree " in line for line in layout)  # fanned out, nothing flat
    assert f"{first[:2]}/{first[2:]}" in _note_paths(bot.mirror)

    # A pass reads the record where git put it: nothing to build, nothing to push.
    notes_before = _git(bot.mirror, "rev-parse", NOTES)
    same = _reconcile(bot)
    assert (same["action"], same["rebuilt"], same["problems"]) == ("none", False, [])
    assert _git(bot.mirror, "rev-parse", NOTES) == notes_before

    # A new build adds its record; every note is still there, once, and git reads them all.
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    grown = _reconcile(bot)
    assert (grown["action"], grown["published"]) == ("fast-forward", True)
    second = _tip(bot)
    paths = _note_paths(bot.mirror)
    annotated = sorted(path.replace("/", "") for path in paths)
    assert annotated == sorted([*blobs, first, second])  # each note once, no duplicates
    assert all(len(path.split("/")[0]) == 2 for path in paths)  # one layout: fanned out
    assert _applied(_git_notes(bot.mirror, "show", second)) == [1, 3]
    assert _applied(_git_notes(bot.mirror, "show", first)) == [1]
    assert _git_notes(bot.mirror, "show", blobs[7]) == f"reviewed {blobs[7]}"
    _git(bot.mirror, "fsck", "--no-dangling", "--no-progress")

    # And git goes on from the bot's tree: it adds a note, the bot still reads its record.
    _git_notes(bot.mirror, "add", "-m", "one more", xenlike.shas["root"])
    assert _reconcile(bot)["action"] == "none"
    assert _git_notes(bot.mirror, "show", xenlike.shas["root"]) == "one more"


def _applied(note: str) -> list[int]:
    xsas = json.loads(note_json(note) or "")["records"]["xsa/4.19"]["xsas"]
    return [x["xsa"] for x in xsas if x["state"] == "applied"]


def _write_files(where: Path, count: int) -> list[str]:
    where.mkdir()
    paths = []
    for i in range(count):
        path = where / f"{i}.txt"
        path.write_text(f"object {i}\n")
        paths.append(str(path))
    return paths


def _commit_tree(repo: Path, tree: str, *parents: str) -> str:
    ident = ["-c", "user.name=Operator", "-c", "user.email=op@example.org"]
    args = [f"-p{parent}" for parent in parents]
    return _git(repo, *ident, "commit-tree", tree, *args, "-m", "notes")


def test_a_note_at_two_paths_reads_as_git_shows_it_and_is_written_once(tmp_path: Path) -> None:
    repo = tmp_path / "notes.git"
    subprocess.run(["git", "init", "--bare", "-q", str(repo)], check=True)

    def blob(text: str) -> str:
        return _git(repo, "hash-object", "-w", "--stdin", input=text)

    def tree(*lines: str) -> str:
        return _git(repo, "mktree", input="".join(f"{line}\n" for line in lines))

    target = blob("the annotated object\n")
    other = blob("another object\n")
    flat, deep = blob("first text\n"), blob("second text\n")
    readme = blob("not a note\n")
    fan = tree(f"100644 blob {deep}\t{target[2:]}", f"100644 blob {readme}\tREADME")
    root = tree(
        f"100644 blob {flat}\t{target}",
        f"040000 tree {fan}\t{target[:2]}",
        f"100644 blob {readme}\tREADME",
    )
    commit = _commit_tree(repo, root)
    _git(repo, "update-ref", NOTES, commit)
    shown = _git_notes(repo, "show", target) + "\n"

    pygit = pygit2.Repository(str(repo))
    found = find_note(pygit, commit, target)
    assert found is not None and found.decode() == shown == "second text\n\nfirst text\n"

    store = ObjectStore(pygit)
    new_tree = notes_tree(store, root, {other: store.write("blob", b"added\n")})
    store.flush()
    _git(repo, "update-ref", NOTES, _commit_tree(repo, new_tree, commit))
    assert sorted(_note_paths(repo)) == sorted(
        [target, other, "README", f"{target[:2]}/README"]
    )  # the note once, the non-notes where they were
    assert _git_notes(repo, "show", target) + "\n" == shown
    assert _git_notes(repo, "show", other) == "added"


# -- leftovers of killed pushes -----------------------------------------------------------


def test_a_pass_removes_what_a_killed_push_left_in_the_mirror_once_it_is_old(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    _reconcile(bot)
    objects = bot.mirror / "objects"
    # A push whose receiving end is killed with SIGKILL while it holds the objects in
    # quarantine (here: during a pre-receive hook), twice.
    hook = bot.mirror / "hooks" / "pre-receive"
    started = tmp_path / "receiving"
    hook.write_text(f"#!/bin/sh\ntouch '{started}'\nexec sleep 60\n")
    hook.chmod(0o755)
    leftovers = []
    for branch in ("stable-4.19", "master"):
        started.unlink(missing_ok=True)
        push = subprocess.Popen(
            [
                "git",
                "-C",
                str(xenlike.path),
                "push",
                "-q",
                str(bot.mirror),
                f"{branch}:refs/heads/x",
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(push.pid, signal.SIGKILL)
        push.wait()
        made = set(objects.glob("tmp_objdir-incoming-*")) - set(leftovers)
        assert len(made) == 1, "the killed push left its quarantine behind"
        leftovers += made
    hook.unlink()
    old, fresh = leftovers
    assert any(p.is_file() for p in old.rglob("*"))  # the pushed objects are in there
    long_ago = time.time() - PUSH_LEFTOVER_AGE - 60
    for path in [old, *old.rglob("*")]:
        os.utime(path, (long_ago, long_ago), follow_symlinks=False)

    same = _reconcile(bot)
    assert same["action"] == "none"
    assert not old.exists()  # the old one is gone
    assert fresh.is_dir()  # a push that may still be running is left alone
    assert "refs/heads/x" not in _git(bot.mirror, "for-each-ref", "--format=%(refname)").split()
    _git(bot.mirror, "fsck", "--no-dangling", "--no-progress")


def test_plan_leaves_the_mirror_alone_even_with_old_leftovers(bot: Bot, xenlike: XenLike) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    _reconcile(bot)
    leftover = bot.mirror / "objects" / "tmp_objdir-incoming-abc123"
    leftover.mkdir()
    long_ago = time.time() - PUSH_LEFTOVER_AGE - 60
    os.utime(leftover, (long_ago, long_ago))
    assert bot("plan").status == 0
    assert leftover.is_dir()  # plan writes nothing outside the state dir


# -- a borrowed upstream that moves or goes ------------------------------------------------


def _alternates(bot: Bot) -> list[str]:
    path = bot.state / "repos" / "xen.git" / "objects" / "info" / "alternates"
    return path.read_text().split() if path.exists() else []


def test_a_moved_then_deleted_upstream_is_only_borrowed_where_it_is(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    # Another clone, made before upstream moved on: it lacks the newest commit of master.
    clone = tmp_path / "clone.git"
    _git(tmp_path, "clone", "-q", "--bare", str(xenlike.path), str(clone))
    xenlike.builder.checkout("master")
    xenlike.builder.commit("later work on master\n", {"NEWS": "more\n"})
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    first = _reconcile(bot)
    tip = _tip(bot)

    moved = tmp_path / "moved"
    shutil.move(str(xenlike.path), moved)
    bot.upstream = moved
    again = _reconcile(bot)
    assert (again["action"], again["tip"], again["problems"]) == ("none", tip, [])
    assert _alternates(bot) == [str((moved / ".git" / "objects").resolve())]

    shutil.rmtree(moved)
    bot.upstream = clone
    after = _reconcile(bot)
    assert (after["action"], after["tip"], after["problems"]) == ("none", tip, [])
    assert _alternates(bot) == [str((clone / "objects").resolve())]
    build = bot("build", str(bot.manifests / "4.19.yaml"))
    assert build.status == 0, build.out + build.err
    assert build.last_line == first["build"]


def test_status_recovers_when_the_borrowed_upstream_is_gone(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    _reconcile(bot)
    shutil.rmtree(xenlike.path)  # status fetches no upstream: it reads the mirror only
    run = bot("status", "--json")
    assert run.status == 0, run.out + run.err
    (branch,) = json.loads(run.out)["branches"]
    assert (branch["tip"], branch["applied"], branch["problems"]) == (_tip(bot), [1], [])


def test_a_remote_upstream_borrows_nothing_and_the_objects_are_copied(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    _reconcile(bot)
    assert _alternates(bot)
    clone = tmp_path / "clone.git"
    _git(tmp_path, "clone", "-q", "--bare", str(xenlike.path), str(clone))
    # A URL: fetched, not borrowed (the later --upstream wins).
    assert _reconcile(bot, "--upstream", f"xen=file://{clone}")["action"] == "none"
    assert _alternates(bot) == []
    shutil.rmtree(xenlike.path)
    shutil.rmtree(clone)
    work = WorkRepo(bot.state / "repos" / "xen.git")
    assert work.upstream("RELEASE-4.19.0", "tags") == xenlike.shas["release"]
    _git(work.path, "fsck", "--connectivity-only", "--no-progress")  # nothing borrowed
