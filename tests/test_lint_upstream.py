"""`xsabot lint --upstream`/`--fetch`, and the same checks in `plan` and `reconcile`: what the
upstream repository says about a manifest, each finding at the line of its field.

The upstreams are real repositories (tests/gitrepo.py). The standard one's base tag is cut off
the stable line (its branch has no tag of its own); `inline` adds point releases tagged on the
stable branch, as Xen does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from tests.conftest import Bot
from tests.gitrepo import XenLike

ROOT = Path(__file__).resolve().parent.parent
Entry = tuple[int, list[str], list[str]]  # XSA, fix commits, prerequisites


def text(*entries: Entry, base: str = "RELEASE-4.19.0", source: str = "stable-4.19") -> str:
    """A manifest in block style: the fixes of the first XSA start at line 8, column 9."""
    lines = ["tree: xen", f"base: {base}", f"source: {source}", "branch: xsa/4.19", "xsas:"]
    for number, commits, prerequisites in entries:
        lines.append(f"  - xsa: {number}")
        if prerequisites:
            lines.append("    prerequisites:")
            for sha in prerequisites:
                lines += [f"      - commit: {sha}", "        why: needed"]
        lines.append("    commits:")
        lines += [f"      - {sha}" for sha in commits]
    return "\n".join(lines) + "\n"


def lint(bot: Bot, *args: str) -> tuple[int, list[str], str]:
    run = bot("lint", *args)
    return run.status, run.out.splitlines(), run.err


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def inline(x: XenLike) -> None:
    """Point releases tagged on `stable-4.19`: RELEASE-4.19.1 at XSA-2's fix (so XSA-1, the
    prerequisite and XSA-2 are in it), RELEASE-4.19.2 at XSA-3's second commit."""
    x.builder.tag("RELEASE-4.19.1", x.shas["xsa2"])
    x.builder.tag("RELEASE-4.19.2", x.shas["xsa3b"])


# -- one finding each --------------------------------------------------------------------------


def test_a_clean_manifest_exits_0(bot: Bot, xenlike: XenLike) -> None:
    s = xenlike.shas
    bot.write("4.19", text((1, [s["xsa1"]], []), (2, [s["xsa2"]], [s["prereq"]])))
    assert lint(bot) == (0, [], "1 manifest, 0 problems\n")


def test_a_typo_in_a_commit_is_a_commit_that_does_not_exist(bot: Bot, xenlike: XenLike) -> None:
    s = xenlike.shas
    typo = s["xsa1"][:-1] + ("0" if s["xsa1"][-1] != "0" else "1")
    path = bot.write("4.19", text((1, [typo], [])))
    status, out, err = lint(bot)
    assert (status, err) == (1, "1 manifest, 1 problem in 1 file\n")
    assert out == [
        f"{path}:8:9: xsas[0].commits[0]: commit {typo[:12]} does not exist in the xen upstream"
    ]


def test_a_commit_off_source_says_where_it_is(bot: Bot, xenlike: XenLike) -> None:
    b = xenlike.builder
    b.branch("staging-4.19", xenlike.source)
    b.checkout("staging-4.19")
    later = b.commit("x86: later fix\n\nThis is XSA-6.\n", {"xen/arch/x86/new.c": "fix\n"})
    path = bot.write("4.19", text((1, [xenlike.shas["xsa1"]], []), (6, [later], [])))
    status, out, _ = lint(bot)
    assert status == 1
    assert out == [
        f"{path}:11:9: xsas[1].commits[0]: {later[:12]} is not on `stable-4.19` after"
        " `RELEASE-4.19.0` (it is on `staging-4.19`)"
    ]


def test_a_prerequisite_off_source_is_found_at_its_commit_key(bot: Bot, xenlike: XenLike) -> None:
    b = xenlike.builder  # a commit on the base's own branch, not on the source
    b.checkout("release-4.19")
    side = b.commit("tools: a release-only change\n", {"README": "Xen 4.19.0\n"})
    path = bot.write("4.19", text((2, [xenlike.shas["xsa2"]], [side])))
    status, out, _ = lint(bot)
    assert status == 1
    assert out == [
        f"{path}:8:17: xsas[0].prerequisites[0].commit: {side[:12]} is not on `stable-4.19`"
        " after `RELEASE-4.19.0` (it is on `release-4.19`)"
    ]


def test_a_fix_already_in_the_base_that_is_not_that_xsa_is_reported(
    bot: Bot, xenlike: XenLike
) -> None:
    inline(xenlike)
    s = xenlike.shas
    # XSA-1's fix in the base RELEASE-4.19.1 is what a moved base looks like: already applied.
    # XSA-4 listing XSA-2's fix (a typo, or a copy of the wrong line) would drop XSA-4.
    path = bot.write(
        "4.19",
        text((1, [s["xsa1"]], [s["prereq"]]), (4, [s["xsa2"]], []), base="RELEASE-4.19.1"),
    )
    status, out, _ = lint(bot)
    assert status == 1
    assert out == [
        f"{path}:14:9: xsas[1].commits[0]: {s['xsa2'][:12]}"
        ' ("sched: fix the loop bound") is already in the base `RELEASE-4.19.1`'
        " and does not say it is XSA-4: fix commits come after the base"
    ]


def test_merge_and_root_commits_cannot_be_picked(bot: Bot, xenlike: XenLike) -> None:
    b = xenlike.builder
    b.branch("side", xenlike.shas["xsa5"])
    b.checkout("side")
    b.commit("side work\n", {"side.c": "side\n"})
    b.checkout(xenlike.source)
    b.commit("tools: more\n", {"tools/more.c": "more\n"})
    b.repo.git.merge("--no-ff", "-m", "Merge side", "side")
    merge = b.rev("HEAD")
    root = xenlike.shas["root"]
    path = bot.write("4.19", text((1, [merge], []), (2, [root], [])))
    status, out, _ = lint(bot)
    assert status == 1
    assert out == [
        f"{path}:8:9: xsas[0].commits[0]: {merge[:12]} is a merge commit (2 parents):"
        " only plain commits can be picked",
        f"{path}:11:9: xsas[1].commits[0]: {root[:12]} is a root commit:"
        " only plain commits can be picked",
    ]


def test_a_missing_tag_and_a_missing_source_branch(bot: Bot, xenlike: XenLike) -> None:
    s = xenlike.shas
    path = bot.write("4.19", text((1, [s["xsa1"]], []), base="RELEASE-4.19.9"))
    status, out, _ = lint(bot)
    assert status == 1
    assert out == [f"{path}:2:7: base: no tag `RELEASE-4.19.9` in the xen upstream"]
    # Without the source, a commit can only be told not to exist.
    bot.write("4.19", text((1, [s["xsa1"], "f" * 40], []), source="stable-4.91"))
    assert lint(bot)[1] == [
        f"{path}:3:9: source: no branch `stable-4.91` in the xen upstream",
        f"{path}:9:9: xsas[0].commits[1]: commit {'f' * 12} does not exist in the xen upstream",
    ]


def test_a_tag_of_another_line_is_not_on_the_line_of_source(bot: Bot, xenlike: XenLike) -> None:
    inline(xenlike)
    b = xenlike.builder
    b.branch("stable-4.18", xenlike.shas["root"])
    b.checkout("stable-4.18")
    b.commit("Xen 4.18.5\n", {"README": "Xen 4.18.5\n"})
    b.tag("RELEASE-4.18.5")
    fix_418 = b.commit("grant: 4.18 fix\n\nThis is XSA-3.\n", {"README": "fixed\n"})
    parted = xenlike.shas["root"][:12]
    path = bot.write("4.19", text((3, [fix_418], []), base="RELEASE-4.18.5"))
    status, out, _ = lint(bot)
    assert status == 1
    # Said once, at `base`: the commit is off `stable-4.19` too, but that follows from it.
    assert out == [
        f"{path}:2:7: base: `RELEASE-4.18.5` is not on the line of `stable-4.19`: the branch"
        f" does not contain it, and has tags of its own since the two parted at {parted}"
        " (RELEASE-4.19.1, RELEASE-4.19.2)"
    ]
    bot.write("4.19", text((3, [fix_418], []), base="RELEASE-4.18.5", source="stable-4.18"))
    assert lint(bot)[:2] == (0, [])
    # A point release on the branch is on the line; so is one cut off it (the standard
    # upstream's RELEASE-4.19.0) while the branch has no tag of its own: see the clean test.
    bot.write("4.19", text((3, [xenlike.shas["xsa3a"]], []), base="RELEASE-4.19.1"))
    assert lint(bot)[:2] == (0, [])


def test_a_tag_older_than_the_published_base_moves_the_branch_backwards(
    bot: Bot, xenlike: XenLike
) -> None:
    inline(xenlike)
    s = xenlike.shas
    path = bot.write("4.19", text((4, [s["xsa4"]], []), base="RELEASE-4.19.2"))
    assert bot("reconcile").status == 0
    published = _git(bot.mirror, "rev-parse", "refs/heads/xsa/4.19")
    bot.write("4.19", text((3, [s["xsa3a"], s["xsa3b"]], []), base="RELEASE-4.19.1"))
    message = (
        f"{path}:2:7: base: `RELEASE-4.19.1` moves `xsa/4.19` backwards: the published branch"
        " is based on `RELEASE-4.19.2`, which already contains `RELEASE-4.19.1`"
    )
    status, out, _ = lint(bot)
    assert (status, out) == (1, [message])
    # A pass says the same and leaves the branch where it is.
    run = bot("reconcile", "--json")
    (branch,) = json.loads(run.out)["branches"]
    assert (run.status, branch["action"], branch["problems"]) == (1, "error", [message])
    assert _git(bot.mirror, "rev-parse", "refs/heads/xsa/4.19") == published
    # The same name, moved back upstream, is no better.
    bot.write("4.19", text((4, [s["xsa4"]], []), base="RELEASE-4.19.2"))
    xenlike.builder.repo.git.tag("-f", "RELEASE-4.19.2", s["xsa3a"])
    assert lint(bot)[1] == [
        f"{path}:2:7: base: `RELEASE-4.19.2` moves `xsa/4.19` backwards: the tag now points to"
        f" an older commit than the one the published branch is based on ({s['xsa3b'][:12]})"
    ]


def test_an_unreachable_mirror_skips_only_the_comparison_with_a_note(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    inline(xenlike)
    s = xenlike.shas
    bot.write("4.19", text((4, [s["xsa4"]], []), base="RELEASE-4.19.2"))
    assert bot("reconcile").status == 0
    bot.write("4.19", text((3, [s["xsa3a"], s["xsa3b"]], []), base="RELEASE-4.19.1"))
    broken = tmp_path / "not-a-mirror"
    broken.write_text("a file, not a repository\n")
    run = bot("lint", mirror=broken)
    assert (run.status, run.out) == (0, "")
    assert run.err == (
        f"note: xen mirror: mirror {broken}: exists but is not a bare git repository;"
        " bases were not compared with the published branches\n"
        "1 manifest, 0 problems\n"
    )


# -- the command -------------------------------------------------------------------------------


def test_lint_dir_checks_every_manifest_against_the_upstream(bot: Bot, xenlike: XenLike) -> None:
    s = xenlike.shas
    good = text((1, [s["xsa1"]], []))
    bot.write("4.19", good)
    lts = good.replace("xsa/4.19", "xsa/4.19-lts").replace(s["xsa1"], "f" * 40)
    bad = bot.write("4.19-lts", lts)
    status, out, err = lint(bot, str(bot.manifests))
    assert (status, err) == (1, "2 manifests, 1 problem in 1 file\n")
    assert out == [
        f"{bad}:8:9: xsas[0].commits[0]: commit {'f' * 12} does not exist in the xen upstream"
    ]


def test_plain_lint_stays_offline(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "4.19.yaml").write_text(text((1, ["f" * 40], [])))
    state = tmp_path / "state"
    # In a process of its own, to see what it loads: no git library, no work repository.
    code = (
        "import sys; from bot.cli.main import main; "
        f"status = main(['lint', '--manifests', {str(manifests)!r}, '--state', {str(state)!r}]); "
        "print(status, 'pygit2' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert (run.stdout, run.stderr) == ("0 False\n", "1 manifest, 0 problems\n")
    assert not state.exists()


def test_fetch_uses_the_configured_upstream_and_writes_no_mirror(
    tmp_path: Path,
    xenlike: XenLike,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "4.19.yaml").write_text(text((1, ["f" * 40], [])))
    monkeypatch.setenv("XSABOT_UPSTREAM_XEN", str(xenlike.path))
    state = tmp_path / "state"
    argv = ["lint", "--fetch", "--manifests", str(manifests), "--state", str(state)]
    assert main(argv) == 1
    assert "does not exist in the xen upstream" in capsys.readouterr().out
    assert not (state / "mirrors").exists()  # the default mirror is read as empty, not made


def test_an_unreachable_upstream_exits_2_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "4.19.yaml").write_text(text((1, ["f" * 40], [])))
    argv = [
        "lint",
        "--upstream",
        str(tmp_path / "nowhere"),
        "--manifests",
        str(manifests),
        "--state",
        str(tmp_path / "s"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"note: xen upstream: upstream {tmp_path / 'nowhere'}: no such directory;" in err


# -- plan and reconcile ------------------------------------------------------------------------


def test_reconcile_stops_only_the_branch_with_a_typo_and_keeps_its_tip(
    bot: Bot, xenlike: XenLike
) -> None:
    s = xenlike.shas
    bot.write("4.19", text((1, [s["xsa1"]], [])))
    other = text((1, [s["xsa1"]], [])).replace("xsa/4.19", "xsa/4.19-lts")
    bot.write("4.19-lts", other)
    assert bot("reconcile").status == 0
    kept = _git(bot.mirror, "rev-parse", "refs/heads/xsa/4.19")
    typo = s["xsa1"][:-1] + ("0" if s["xsa1"][-1] != "0" else "1")
    path = bot.write("4.19", text((1, [typo], []), (3, [s["xsa3a"], s["xsa3b"]], [])))
    bot.write(
        "4.19-lts",
        other.rstrip("\n") + f"\n  - xsa: 3\n    commits: [{s['xsa3a']}, {s['xsa3b']}]\n",
    )
    for command in ("plan", "reconcile"):
        run = bot(command, "--json")
        data = json.loads(run.out)
        by_name = {b["manifest"]: b for b in data["branches"]}
        assert run.status == 1
        assert by_name["4.19"]["action"] == "kept"  # it holds XSA-1, which the typo would lose
        assert [w["xsa"] for w in by_name["4.19"]["would_withdraw"]] == [1]
        assert by_name["4.19"]["problems"] == [
            f"{path}:8:9: xsas[0].commits[0]: commit {typo[:12]} does not exist in the xen upstream"
        ]
        assert by_name["4.19-lts"]["action"] == "fast-forward"
        assert by_name["4.19-lts"]["applied"] == [1, 3]
    assert _git(bot.mirror, "rev-parse", "refs/heads/xsa/4.19") == kept  # XSA-1 not withdrawn
    lts = _git(bot.mirror, "rev-parse", "refs/heads/xsa/4.19-lts")
    assert _git(bot.mirror, "rev-list", "--count", f"{kept}..{lts}") == "2"
    # The text output names the place too.
    assert f"problem: {path}:8:9: xsas[0].commits[0]" in bot("plan").out


def test_a_clean_pass_is_unchanged_by_the_checks(bot: Bot, xenlike: XenLike) -> None:
    s = xenlike.shas
    bot.write(
        "4.19", text((1, [s["xsa1"]], []), (2, [s["xsa2"]], [s["prereq"]]), (5, [s["xsa5"]], []))
    )
    data = json.loads(bot("reconcile", "--json").out)
    (branch,) = data["branches"]
    assert (branch["action"], branch["applied"], branch["already_applied"]) == (
        "create",
        [1, 2],
        [5],
    )
    assert branch["problems"] == []
