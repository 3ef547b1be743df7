"""`xsabot build`: in-memory, deterministic branches, and what each XSA's outcome is."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import git

from tests.conftest import Bot
from tests.gitrepo import XenLike
from tests.manifests import manifest


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_build_prints_the_tip_last_and_is_the_same_from_another_clone(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    first = bot("build", str(path))
    assert first.status == 0, first.err
    clone = tmp_path / "elsewhere" / "xen"
    git.Repo.clone_from(str(xenlike.path), clone, multi_options=["--mirror"])
    from bot.cli.main import main

    bot.capsys.readouterr()
    status = main(
        [
            "build",
            str(path),
            "--state",
            str(tmp_path / "elsewhere" / "state"),
            "--upstream",
            str(clone),
        ]
    )
    second = bot.capsys.readouterr().out.strip().splitlines()[-1]
    assert status == 0
    assert second == first.last_line
    assert len(second) == 40


def test_build_commits_keep_author_and_name_their_source(bot: Bot, xenlike: XenLike) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    run = bot("build", str(path), "--ref", "refs/heads/xsa-check")
    assert run.status == 0, run.err
    tip = run.last_line
    up = xenlike.path
    assert _git(up, "rev-parse", "refs/heads/xsa-check") == tip
    assert _git(up, "log", "-1", "--format=%an <%ae> %ad", "--date=raw", tip) == _git(
        up, "log", "-1", "--format=%an <%ae> %ad", "--date=raw", xenlike.shas["xsa1"]
    )
    assert _git(up, "log", "-1", "--format=%cn <%ce> %cd", "--date=raw", tip) == (
        "xsabot <xsabot@xenproject.invalid> "
        + _git(up, "log", "-1", "--format=%cd", "--date=raw", xenlike.shas["xsa1"])
    )
    body = _git(up, "log", "-1", "--format=%B", tip)
    assert body.endswith(f"(cherry picked from commit {xenlike.shas['xsa1']})")
    assert "This is XSA-1 / CVE-2026-0001." in body
    assert _git(up, "rev-parse", f"{tip}^") == xenlike.shas["release"]


def test_blocked_xsa_does_not_stop_later_ones(bot: Bot, xenlike: XenLike) -> None:
    path = bot.write(
        "4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]), (3, ["xsa3a", "xsa3b"]))
    )
    run = bot("build", str(path), "--ref", "refs/heads/xsa-check")
    assert run.status == 1
    assert f"XSA-2 BLOCKED at {xenlike.shas['xsa2']}: conflict: xen/common/sched.c" in run.out
    assert "XSA-3 fix" in run.out
    tip = run.last_line
    subjects = _git(xenlike.path, "log", "--format=%s", f"{xenlike.shas['release']}..{tip}")
    assert subjects.splitlines() == [
        "grant: part two",
        "grant: part one",
        "x86/mm: check the page type",
    ]
    grep = subprocess.run(
        ["git", "-C", str(xenlike.path), "grep", "-l", "-e", "<<<<<<<", "-e", ">>>>>>>", tip],
        capture_output=True,
        text=True,
    )
    assert grep.returncode == 1 and grep.stdout == ""  # no file holds a conflict marker


def test_an_xsa_is_all_or_nothing(bot: Bot, xenlike: XenLike) -> None:
    # XSA-4's first commit applies, its second needs XSA-2's prerequisite: nothing of it lands.
    path = bot.write("4.19", manifest(xenlike, (4, ["xsa1", "xsa2"])))
    run = bot("build", str(path))
    assert run.status == 1
    assert run.last_line == xenlike.shas["release"]


def test_prerequisite_makes_the_fix_apply(bot: Bot, xenlike: XenLike) -> None:
    text = manifest(
        xenlike,
        {
            "xsa": 2,
            "prerequisites": f"[{{commit: {xenlike.shas['prereq']}, why: loop restructure}}]",
            "commits": f"[{xenlike.shas['xsa2']}]",
        },
    )
    run = bot("build", str(bot.write("4.19", text)))
    assert run.status == 0, run.out + run.err
    assert f"XSA-2 prerequisite {xenlike.shas['prereq']}" in run.out


def test_fix_already_in_the_base_is_reported_not_blocked(bot: Bot, xenlike: XenLike) -> None:
    run = bot("build", str(bot.write("4.19", manifest(xenlike, (5, ["xsa5"])))))
    assert run.status == 0, run.out
    assert f"XSA-5 fix {xenlike.shas['xsa5']} -> already there" in run.out
    assert run.last_line == xenlike.shas["release"]


def test_commit_not_on_the_source_is_a_clear_error(bot: Bot, xenlike: XenLike) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    text = manifest(xenlike, {"xsa": 9, "commits": f"[{missing}]"}, (1, ["xsa1"]))
    run = bot("build", str(bot.write("4.19", text)))
    assert run.status == 1
    assert f"XSA-9 BLOCKED at {missing}: bad-source" in run.out
    assert "not in the upstream repository" in run.out
    # A commit that exists but only on another branch is refused too.
    text = manifest(xenlike, {"xsa": 9, "commits": f"[{xenlike.shas['release']}]"})
    assert bot("build", str(bot.write("4.19", text))).status == 0  # the base itself: already in
    side = xenlike.builder
    side.branch("elsewhere", xenlike.shas["root"])
    side.checkout("elsewhere")
    stray = side.commit("stray\n", {"README": "stray\n"})
    run = bot(
        "build", str(bot.write("4.19", manifest(xenlike, {"xsa": 9, "commits": f"[{stray}]"})))
    )
    assert run.status == 1
    assert "not on the source branch after the base" in run.out


def _advisory_patch(x: XenLike, tmp: Path) -> bytes:
    """A format-patch mail of a change not on the stable branch (as advisories publish)."""
    b = x.builder
    b.branch("advisory", x.shas["release"])
    b.checkout("advisory")
    b.commit(
        "x86/mm: advisory fix\n\nThis is XSA-6.\n",
        {
            "xen/arch/x86/mm.c": b.read("xen/arch/x86/mm.c").replace(
                "mm line 25", "mm line 25 fixed"
            )
        },
    )
    return subprocess.run(
        ["git", "-C", str(x.path), "format-patch", "-1", "--stdout"],
        check=True,
        capture_output=True,
    ).stdout


def test_advisory_patch_is_verified_then_applied(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    data = _advisory_patch(xenlike, tmp_path)
    (bot.manifests / "patches").mkdir()
    (bot.manifests / "patches" / "xsa6-4.19.patch").write_bytes(data)
    good = hashlib.sha256(data).hexdigest()
    text = manifest(
        xenlike,
        (1, ["xsa1"]),
        {"xsa": 6, "patches": f"[{{path: patches/xsa6-4.19.patch, sha256: {good}}}]"},
    )
    run = bot("build", str(bot.write("4.19", text)), "--ref", "refs/heads/xsa-check")
    assert run.status == 0, run.out + run.err
    tip = run.last_line
    assert "mm line 25 fixed" in _git(xenlike.path, "show", f"{tip}:xen/arch/x86/mm.c")
    assert (
        _git(xenlike.path, "log", "-1", "--format=%an|%s", tip)
        == "Jan Beulich|x86/mm: advisory fix"
    )
    assert f"sha256 {good}" in _git(xenlike.path, "log", "-1", "--format=%B", tip)

    wrong = "ab" * 32
    text = text.replace(good, wrong)
    run = bot("build", str(bot.write("4.19", text)))
    assert run.status == 1
    assert "XSA-6 BLOCKED at patch: sha256-mismatch" in run.out
    assert f"sha256 is {good}, the manifest says {wrong}" in run.out
    assert "XSA-1 fix" in run.out


def test_the_users_git_config_and_attributes_do_not_change_a_build(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    """libgit2 and git would read ~/.gitconfig and ~/.config/git/attributes: `*.c -merge`
    turns every 3-way file merge into a conflict. A build must not see them."""
    import os
    import sys

    # XSA-3 meets a grant.c that the base changed elsewhere: a real 3-way file merge.
    path = bot.write("4.19", manifest(xenlike, (3, ["xsa3a", "xsa3b"])))
    tips = []
    for name, attributes in (("clean", ""), ("hostile", "*.c -merge\n")):
        home = tmp_path / name
        (home / ".config" / "git").mkdir(parents=True)
        (home / ".config" / "git" / "attributes").write_text(attributes)
        (home / ".gitconfig").write_text("[merge]\n\tdefault = binary\n[core]\n\tautocrlf = true\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_"))}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot",
                "build",
                str(path),
                "--state",
                str(tmp_path / f"s-{name}"),
                "--upstream",
                f"xen={xenlike.path}",
            ],
            env={**env, "HOME": str(home)},
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        tips.append(proc.stdout.strip().splitlines()[-1])
    assert tips[0] == tips[1]


def test_build_ref_never_moves_an_existing_ref_without_force(bot: Bot, xenlike: XenLike) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    mine = xenlike.shas["release"]
    _git(xenlike.path, "update-ref", "refs/heads/my-work", mine)

    run = bot("build", str(path), "--ref", "refs/heads/my-work")
    assert run.status == 2
    assert "refs/heads/my-work exists" in run.err and "--force" in run.err
    assert _git(xenlike.path, "rev-parse", "refs/heads/my-work") == mine  # untouched

    run = bot("build", str(path), "--ref", "refs/heads/my-work", "--force")
    assert run.status == 0, run.err
    assert _git(xenlike.path, "rev-parse", "refs/heads/my-work") == run.last_line
