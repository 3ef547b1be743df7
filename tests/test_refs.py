"""The refs the bot may write in a mirror: one rule, enforced by the push itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.core.refs import WritableRefs
from bot.git.publish import RefUpdate, push
from bot.git.workrepo import WorkRepo
from tests.conftest import Bot
from tests.gitrepo import XenLike
from tests.manifests import manifest


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_only_the_namespace_candidates_notes_and_given_copies_are_writable() -> None:
    copy = "refs/xsabot/upstream/tags/RELEASE-4.19.0"
    # A copy handed in outside the copies' namespace is refused all the same.
    refs = WritableRefs.of("xsa/", [copy, "refs/tags/RELEASE-4.19.0", "refs/heads/master"])
    assert refs.allows("refs/heads/xsa/4.19")
    assert refs.allows("refs/heads/xsa-candidate/4.19")
    assert refs.allows("refs/notes/xsabot")
    assert refs.allows(copy)
    for ref in (
        "refs/tags/RELEASE-4.19.0",
        "refs/xsabot/upstream/tags/RELEASE-4.19.1",
        "refs/xsabot/upstream/heads/master",
        "refs/heads/master",
        "refs/heads/xsa/",
        "refs/heads/xsa",
        "refs/heads/xsa-other/4.19",
        "refs/tags/RELEASE-4.19.1",
        "refs/notes/commits",
        "refs/heads/xsabot/4.19/xsa-1",
    ):
        assert not refs.allows(ref), ref


def test_a_push_with_one_ref_outside_the_bots_refs_sends_nothing(
    tmp_path: Path, xenlike: XenLike
) -> None:
    mirror = tmp_path / "mirror.git"
    subprocess.run(["git", "init", "--bare", "-q", str(mirror)], check=True)
    work = WorkRepo(tmp_path / "work.git")
    work.fetch_upstream(str(xenlike.path))
    release = xenlike.shas["release"]
    updates = [
        RefUpdate("refs/heads/xsa/4.19", release, None),
        RefUpdate("refs/heads/master", release, None),
    ]
    result = push(work, str(mirror), updates, writable=WritableRefs.of("xsa/"))
    assert not result.ok
    assert "refs/heads/master" in result.message
    assert _git(mirror, "for-each-ref") == ""  # not even the allowed branch


def test_upstream_copies_never_move_a_tag_or_replace_the_mirrors_own_branch(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    config = tmp_path / "xsabot.yaml"
    config.write_text(
        f"trees:\n  xen:\n    upstream: {xenlike.path}\n    mirror: {bot.mirror}\n"
        "    copy_upstream_refs: true\n"
    )
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    subprocess.run(["git", "init", "--bare", "-q", str(bot.mirror)], check=True)
    # The mirror's operator keeps refs of their own under the copied names.
    own = tmp_path / "own"
    subprocess.run(["git", "init", "-q", str(own)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(own),
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@b",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "the mirror's own",
        ],
        check=True,
    )
    theirs = _git(own, "rev-parse", "HEAD")
    _git(
        own,
        "push",
        "-q",
        str(bot.mirror),
        "HEAD:refs/tags/RELEASE-4.19.0",
        "HEAD:refs/heads/stable-4.19",
    )

    run = bot("reconcile", "--config", str(config))
    assert run.status == 0, run.out + run.err
    assert _git(bot.mirror, "rev-parse", "refs/tags/RELEASE-4.19.0") == theirs
    assert _git(bot.mirror, "rev-parse", "refs/heads/stable-4.19") == theirs
    assert _git(bot.mirror, "rev-parse", "refs/heads/xsa/4.19")  # the branch is published
