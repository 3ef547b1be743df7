"""Lock files a killed git left behind (`bot.git.locks`).

A git killed while it updates a ref leaves `<ref>.lock`, and every later update of that ref
fails until the file goes. The process-group kills of the crash test left such files in 2
of 15 trials, and each stopped every later pass of its branch. Here the locks are made by
real gits, killed while they hold them (a `reference-transaction` hook runs with the locks
taken), or written by hand where only their place and age matter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bot.errors import GitError
from bot.git.locks import STALE_LOCK_AGE, remove_stale_locks
from bot.git.proposal_branch import branch_tip, move_branch
from tests.conftest import Bot
from tests.gitrepo import RepoBuilder, XenLike
from tests.manifests import manifest

BRANCH = "refs/heads/xsa/4.19"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _age(path: Path, seconds: float = STALE_LOCK_AGE + 60) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _reconcile(bot: Bot) -> tuple[int, dict]:
    run = bot("reconcile", "--json")
    (branch,) = json.loads(run.out)["branches"]
    return run.status, branch


def _killed_while_locking(repo: Path, ref: str, new: str, tmp_path: Path) -> Path:
    """Run `git update-ref ref new` in `repo` and SIGKILL it (and its hook) while it holds
    the ref's lock: the lock file it leaves."""
    hooks = tmp_path / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    started = tmp_path / "locked"
    hook = hooks / "reference-transaction"
    hook.write_text(
        f"#!/bin/sh\n[ \"$1\" = prepared ] || exit 0\ntouch '{started}'\nexec sleep 60\n"
    )
    hook.chmod(0o755)
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "-c", f"core.hooksPath={hooks}", "update-ref", ref, new],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    git_dir = Path(_git(repo, "rev-parse", "--absolute-git-dir"))
    lock = git_dir / f"{ref}.lock"
    assert lock.is_file(), "the killed git left its lock"
    return lock


def test_a_lock_a_killed_git_left_on_a_published_branch_is_cleared_once_stale(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    status, first = _reconcile(bot)
    assert (status, first["action"]) == (0, "create")
    tip = _git(bot.mirror, "rev-parse", BRANCH)
    # Someone's git, killed while it moved the published branch (to its own tip: harmless).
    lock = _killed_while_locking(bot.mirror, BRANCH, tip, tmp_path)
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))

    # Young: perhaps a git still running. Left alone; the push fails whole and says why.
    status, young = _reconcile(bot)
    assert (status, young["action"]) == (1, "error")
    # The branch's lock and HEAD's (HEAD names the branch: git locks both).
    left = sorted(bot.mirror.rglob("*.lock"))
    assert left == [bot.mirror / "HEAD.lock", lock]
    (problem,) = young["problems"]
    assert problem.startswith(f"push failed: the git lock {lock} is in the way")
    assert "nothing was published" in problem
    assert all(p.exists() for p in left)
    assert _git(bot.mirror, "rev-parse", BRANCH) == tip  # nothing moved

    for p in left:
        _age(p)
    status, later = _reconcile(bot)
    assert (status, later["action"], later["problems"]) == (0, "fast-forward", []), later[
        "problems"
    ]
    assert not any(p.exists() for p in left)
    assert _git(bot.mirror, "rev-parse", BRANCH) == later["tip"] != tip
    _git(bot.mirror, "fsck", "--no-dangling", "--no-progress")


def test_old_locks_of_refs_that_are_not_the_bots_are_left_in_the_mirror(
    bot: Bot, xenlike: XenLike
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    _reconcile(bot)
    others = [bot.mirror / "refs" / "heads" / "master.lock", bot.mirror / "packed-refs.lock"]
    others.append(bot.mirror / "refs" / "heads" / "xsa-other" / "4.19.lock")  # not `xsa/`
    for lock in others:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("")
        _age(lock)
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    status, branch = _reconcile(bot)
    assert (status, branch["action"]) == (0, "fast-forward")
    assert all(lock.exists() for lock in others)


def test_a_stale_lock_in_the_work_repository_does_not_stop_the_fetch(
    bot: Bot, xenlike: XenLike
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    _reconcile(bot)
    work = bot.state / "repos" / "xen.git"
    lock = work / "refs" / "upstream" / "heads" / "master.lock"
    lock.write_text("")
    _age(lock)
    xenlike.builder.checkout("master")
    moved = xenlike.builder.commit("later work on master\n", {"NEWS": "more\n"})
    status, branch = _reconcile(bot)  # fetches the moved master into the locked ref
    assert (status, branch["problems"]) == (0, [])
    assert not lock.exists()
    assert _git(work, "rev-parse", "refs/upstream/heads/master") == moved


def test_a_proposal_branch_moves_past_its_own_stale_lock_only(tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    first = repo.commit("Manifests\n", {"manifests/4.19.yaml": "tree: xen\n"})
    second = repo.commit("More\n", {"manifests/4.20.yaml": "tree: xen\n"})
    move_branch(repo.path, "xsabot/4.19/xsa-1", first, None)
    lock = _killed_while_locking(
        repo.path, "refs/heads/xsabot/4.19/xsa-1", second, tmp_path / "kill"
    )
    with pytest.raises(GitError, match=r"xsa-1\.lock"):  # young: a git may be running
        move_branch(repo.path, "xsabot/4.19/xsa-1", second, first)
    _age(lock)
    move_branch(repo.path, "xsabot/4.19/xsa-1", second, first)
    assert branch_tip(repo.path, "xsabot/4.19/xsa-1") == second
    assert not lock.exists()


def test_a_proposal_branch_does_not_clear_another_refs_lock(tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    first = repo.commit("Manifests\n", {"manifests/4.19.yaml": "tree: xen\n"})
    # A volunteer's packed-refs lock, old: the bot's update of a packed branch needs it.
    move_branch(repo.path, "xsabot/4.19/xsa-1", first, None)
    _git(repo.path, "pack-refs", "--all")
    theirs = repo.path / ".git" / "packed-refs.lock"
    theirs.write_text("")
    _age(theirs)
    with pytest.raises(GitError, match=r"packed-refs\.lock"):
        move_branch(repo.path, "xsabot/4.19/xsa-1", "0" * 40, first)  # a deletion
    assert theirs.exists()


def test_remove_stale_locks_takes_only_the_prefixes_given(tmp_path: Path) -> None:
    git_dir = tmp_path / "repo.git"
    made = {
        "refs/heads/xsa/4.19.lock": True,
        "refs/heads/xsa/deep/4.20.lock": True,
        "refs/notes/xsabot.lock": True,
        "refs/heads/xsa-other.lock": False,
        "refs/notes/commits.lock": False,
        "refs/heads/main.lock": False,
    }
    for name in made:
        path = git_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        _age(path)
    young = git_dir / "refs" / "heads" / "xsa" / "4.21.lock"
    young.write_text("")
    linked = git_dir / "refs" / "heads" / "xsa" / "4.22.lock"
    linked.symlink_to(git_dir / "refs" / "heads" / "main.lock")

    removed = remove_stale_locks(git_dir, ("refs/heads/xsa/", "refs/notes/xsabot"))
    assert sorted(str(p.relative_to(git_dir)) for p in removed) == sorted(
        name for name, gone in made.items() if gone
    )
    assert young.exists() and linked.is_symlink()
    with pytest.raises(ValueError, match="not a ref prefix"):
        remove_stale_locks(git_dir, ("refs/../config",))
    with pytest.raises(ValueError, match="not a ref prefix"):
        remove_stale_locks(git_dir, ("config",))
