"""Writes stay in the bot's own refs, and no location reaches git as an option.

Reproductions of issue 11's "writes outside the namespace": `copy_upstream_refs` with
`source: master` moved the mirror's own `master` (and wrote `RELEASE-*` tags among the
mirror's), and a mirror value like `-ux@y:;...` reached git as an option.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bot.config import load_config, with_overrides
from bot.core.refs import WritableRefs
from bot.errors import GitError, SetupError, UsageError
from bot.git.publish import RefUpdate, push
from bot.git.remote import RemoteClone
from bot.git.workrepo import WorkRepo
from tests.conftest import Bot
from tests.gitrepo import XenLike

COPIES = "refs/xsabot/upstream/"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _refs(repo: Path) -> dict[str, str]:
    out = _git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ") for line in out.splitlines())


def _not_the_bots(refs: dict[str, str]) -> dict[str, str]:
    mine = ("refs/heads/xsa/", "refs/notes/xsabot", COPIES)
    return {ref: sha for ref, sha in refs.items() if not ref.startswith(mine)}


def _copies(refs: dict[str, str]) -> dict[str, str]:
    return {ref: sha for ref, sha in refs.items() if ref.startswith(COPIES)}


def _copying_config(tmp_path: Path, bot: Bot, xenlike: XenLike) -> Path:
    config = tmp_path / "xsabot.yaml"
    config.write_text(
        f"trees:\n  xen:\n    upstream: {xenlike.path}\n    mirror: {bot.mirror}\n"
        "    copy_upstream_refs: true\n"
    )
    return config


def _master_manifest(bot: Bot) -> None:
    bot.write(
        "master", "tree: xen\nbase: RELEASE-4.20.0\nsource: master\nbranch: xsa/master\nxsas: []\n"
    )


def test_upstream_copies_go_to_their_own_namespace_never_over_the_mirrors_refs(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    config = _copying_config(tmp_path, bot, xenlike)
    b = xenlike.builder
    b.checkout("master")
    upstream_master = b.commit("later work on master\n", {"NEWS": "more\n"})
    b.tag("RELEASE-4.20.0")
    _master_manifest(bot)  # a base on the line of its source, as the repository checks want
    # The mirror already has a `master` that upstream's extends (the old code fast-forwarded
    # it: a write to a ref the bot never made) and RELEASE tags of its own, one of them on a
    # commit upstream tags differently.
    subprocess.run(["git", "init", "--bare", "-q", str(bot.mirror)], check=True)
    root = xenlike.shas["root"]
    _git(
        xenlike.path,
        "push",
        "-q",
        str(bot.mirror),
        f"{root}:refs/heads/master",
        f"{root}:refs/tags/RELEASE-4.19.0",
        f"{root}:refs/tags/RELEASE-4.18.0",
    )
    before = _refs(bot.mirror)

    run = bot("reconcile", "--config", str(config))
    assert run.status == 0, run.out + run.err
    after = _refs(bot.mirror)
    assert _not_the_bots(after) == before  # nothing of the mirror's own moved or appeared
    assert after[f"{COPIES}heads/master"] == upstream_master
    assert after[f"{COPIES}tags/RELEASE-4.19.0"] == _git(
        xenlike.path, "rev-parse", "RELEASE-4.19.0"
    )
    assert f"{COPIES}tags/RELEASE-4.20.0" in after
    assert f"{COPIES}heads/stable-4.19" not in after  # only what the manifests use
    assert after["refs/heads/xsa/master"] == upstream_master

    # Upstream re-tags a release and rewinds master: a tag copy is never moved, a branch copy
    # only fast-forwards. A later fast-forward is followed.
    b.repo.git.tag("-f", "RELEASE-4.19.0", upstream_master)
    b.repo.git.reset("--hard", root)
    assert bot("reconcile", "--config", str(config)).status == 0
    assert _copies(_refs(bot.mirror)) == _copies(after)
    b.repo.git.reset("--hard", upstream_master)
    newer = b.commit("even later\n", {"NEWS": "most\n"})
    assert bot("reconcile", "--config", str(config)).status == 0
    final = _refs(bot.mirror)
    assert final[f"{COPIES}heads/master"] == newer
    assert final[f"{COPIES}tags/RELEASE-4.19.0"] == after[f"{COPIES}tags/RELEASE-4.19.0"]
    assert _not_the_bots(final) == before


def test_a_push_of_a_copy_outside_its_namespace_sends_nothing(
    tmp_path: Path, xenlike: XenLike
) -> None:
    mirror = tmp_path / "mirror.git"
    subprocess.run(["git", "init", "--bare", "-q", str(mirror)], check=True)
    work = WorkRepo(tmp_path / "work.git")
    work.fetch_upstream(str(xenlike.path))
    release = xenlike.shas["release"]
    # Even when the caller lists it as a copy, refs/tags/... is not the copies' namespace.
    updates = [
        RefUpdate(f"{COPIES}tags/RELEASE-4.19.0", release, None),
        RefUpdate("refs/tags/RELEASE-4.19.0", release, None),
    ]
    writable = WritableRefs.of("xsa/", [u.ref for u in updates])
    result = push(work, str(mirror), updates, writable=writable)
    assert not result.ok and "refs/tags/RELEASE-4.19.0" in result.message
    assert _git(mirror, "for-each-ref") == ""


HOSTILE = ["-ux@y:;touch${IFS}PWNED", "--upload-pack=touch PWNED", "/srv/x.git\n-u", ""]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("key", ["mirror", "upstream"])
def test_a_config_location_git_could_read_as_an_option_is_refused_by_key(
    tmp_path: Path, key: str, value: str
) -> None:
    config = tmp_path / "xsabot.yaml"
    other = "upstream" if key == "mirror" else "mirror"
    config.write_text(f"trees:\n  xen:\n    {key}: {json.dumps(value)}\n    {other}: /srv/x.git\n")
    with pytest.raises(UsageError) as caught:
        load_config(config)
    assert re.search(rf"{re.escape(str(config))}:3:\d+: trees\.xen\.{key}: ", str(caught.value))


@pytest.mark.parametrize("key", ["git_url", "fork_git_url"])
def test_a_forge_clone_url_that_is_an_option_is_refused_by_key(tmp_path: Path, key: str) -> None:
    config = tmp_path / "xsabot.yaml"
    config.write_text(f"forge:\n  {key}: '--upload-pack=touch PWNED'\n")
    with pytest.raises(UsageError, match=rf"forge\.{key}: .*may not start with '-'"):
        load_config(config)


def test_command_line_and_environment_locations_are_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(None, cwd=tmp_path)
    with pytest.raises(UsageError, match="--mirror xen: a repository location may not"):
        with_overrides(config, mirrors={"xen": "-ux@y:;touch${IFS}PWNED"})
    with pytest.raises(UsageError, match="--upstream xen: a repository location may not"):
        with_overrides(config, upstreams={"": "--upload-pack=touch PWNED"})
    monkeypatch.setenv("XSABOT_UPSTREAM_XEN", "-ux@y:;touch${IFS}PWNED")
    with pytest.raises(UsageError, match="XSABOT_UPSTREAM_XEN: a repository location may not"):
        config.upstream_of("xen")


def test_the_cli_refuses_a_hostile_mirror_before_running_git(
    bot: Bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a relative mirror would be made if it were taken
    bot.write(
        "4.19", "tree: xen\nbase: RELEASE-4.19.0\nsource: stable-4.19\nbranch: xsa/4.19\nxsas: []\n"
    )
    marker = tmp_path / "PWNED"
    run = bot("reconcile", mirror=Path(f"--upload-pack=touch {marker}"))
    assert run.status == 2
    assert "--mirror xen: a repository location may not start with '-'" in run.err
    assert not marker.exists() and not bot.state.exists()


def test_git_adapters_never_pass_a_location_as_an_option(tmp_path: Path, xenlike: XenLike) -> None:
    """Behind the config, the git layer refuses such a location on its own."""
    marker = tmp_path / "PWNED"
    hostile = f"--upload-pack=touch {marker}"
    work = WorkRepo(tmp_path / "work.git")
    work.fetch_upstream(str(xenlike.path))
    with pytest.raises(SetupError, match="may not start with '-'"):
        work.remote_refs(hostile, ["refs/heads/*"])
    with pytest.raises(SetupError, match="may not start with '-'"):
        work.fetch_mirror(hostile, "xsa/", create=True)
    with pytest.raises(SetupError, match="may not start with '-'"):
        work.write_ref(hostile, xenlike.shas["release"], "refs/heads/x", replace=False)
    update = RefUpdate("refs/heads/xsa/4.19", xenlike.shas["release"], None)
    with pytest.raises(SetupError, match="may not start with '-'"):
        push(work, hostile, [update], writable=WritableRefs.of("xsa/"))
    clone = RemoteClone(tmp_path / "remote.git", env_for=lambda url: {})
    clone.ensure()
    with pytest.raises(GitError, match="may not start with '-'"):
        clone.fetch(hostile, "main", "refs/x")
    with pytest.raises(GitError, match="may not start with '-'"):
        clone.has_branch(hostile, "main")
    with pytest.raises(GitError, match="may not start with '-'"):
        clone.push(hostile, "main", xenlike.shas["release"], None)
    assert not marker.exists()
