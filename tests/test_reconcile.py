"""`xsabot reconcile`/`plan`: forward-only publishing, records, leases, no-op passes."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.core.record import note_json
from tests.conftest import Bot
from tests.gitrepo import XenLike
from tests.manifests import manifest


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _tip(mirror: Path, branch: str = "xsa/4.19") -> str:
    return _git(mirror, "rev-parse", f"refs/heads/{branch}")


def _reconcile(bot: Bot, *args: str, **kw: Path) -> dict:
    run = bot("reconcile", "--json", *args, **kw)
    data = json.loads(run.out)
    data["status"] = run.status
    return data


def _only(data: dict) -> dict:
    (branch,) = data["branches"]
    return branch


def test_first_pass_creates_then_append_fast_forwards(bot: Bot, xenlike: XenLike) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    first = _only(_reconcile(bot))
    assert (first["action"], first["published"], first["applied"]) == ("create", True, [1])
    old = _tip(bot.mirror)
    assert old == first["tip"]

    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    second = _only(_reconcile(bot))
    assert second["action"] == "fast-forward"
    assert second["applied"] == [1, 3]
    new = _tip(bot.mirror)
    assert _git(bot.mirror, "rev-parse", f"{new}~2") == old
    assert second["tip"] == second["build"] == new


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("remove", "removed: XSA-1 (removed from the manifest)"),
        ("reorder", "reordered: XSA-3, XSA-1"),
        ("base", "base: RELEASE-4.19.0 -> RELEASE-4.19.1"),
    ],
)
def test_rewrites_publish_a_pseudo_merge(
    bot: Bot, xenlike: XenLike, change: str, expected: str
) -> None:
    xenlike.builder.checkout("release-4.19")
    xenlike.builder.commit("Xen 4.19.1\n", {"README": "Xen 4.19.1\n"})
    xenlike.builder.tag("RELEASE-4.19.1")
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    _reconcile(bot)
    old = _tip(bot.mirror)

    new_text = {
        "remove": manifest(xenlike, (3, ["xsa3a", "xsa3b"])),
        "reorder": manifest(xenlike, (3, ["xsa3a", "xsa3b"]), (1, ["xsa1"])),
        "base": manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"]), base="RELEASE-4.19.1"),
    }[change]
    bot.write("4.19", new_text)
    report = _only(_reconcile(bot))
    assert report["action"] == "pseudo-merge"
    assert expected in report["changes"]
    new = _tip(bot.mirror)
    parents = _git(bot.mirror, "log", "-1", "--format=%P", new).split()
    assert parents == [old, report["build"]]
    assert _git(bot.mirror, "rev-parse", f"{new}^{{tree}}") == _git(
        bot.mirror, "rev-parse", f"{report['build']}^{{tree}}"
    )
    # Downstreams fast-forward: the old tip is an ancestor of the new one.
    subprocess.run(
        ["git", "-C", str(bot.mirror), "merge-base", "--is-ancestor", old, new], check=True
    )
    assert expected in _git(bot.mirror, "log", "-1", "--format=%B", new)


def test_pseudo_merge_is_the_same_commit_on_two_replicas(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    _reconcile(bot)
    replica_mirror = tmp_path / "replica-mirror.git"
    shutil.copytree(bot.mirror, replica_mirror)
    bot.write("4.19", manifest(xenlike, (3, ["xsa3a", "xsa3b"])))
    here = _only(_reconcile(bot))
    there = _only(_reconcile(bot, state=tmp_path / "replica-state", mirror=replica_mirror))
    assert here["action"] == there["action"] == "pseudo-merge"
    assert here["tip"] == there["tip"]
    assert _tip(bot.mirror) == _tip(replica_mirror)


def test_unchanged_inputs_do_no_rebuild_even_on_a_fresh_machine(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"])))
    first = _only(_reconcile(bot))
    assert first["rebuilt"] is True
    again = _only(_reconcile(bot))
    fresh = _only(_reconcile(bot, state=tmp_path / "fresh-state"))
    for report in (again, fresh):
        assert report["action"] == "none"
        assert report["rebuilt"] is False
        assert report["tip"] == first["tip"]
        # The record remembers what the build found, so the blocked XSA is still reported.
        assert report["blocked"] == first["blocked"]
        assert report["applied"] == [1]
    # Editing only a `why` text is not an input change.
    bot.write(
        "4.19",
        manifest(
            xenlike,
            (1, ["xsa1"]),
            {"xsa": 2, "status": "blocked", "why": "needs a manual backport"},
        ),
    )
    changed = _only(_reconcile(bot))
    assert changed["rebuilt"] is True and changed["not_applied"] == [2]


def test_blocked_xsa_is_reported_and_the_rest_published(bot: Bot, xenlike: XenLike) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]), (3, ["xsa3a", "xsa3b"])))
    data = _reconcile(bot)
    report = _only(data)
    assert data["status"] == 1
    assert report["published"] is True
    assert report["applied"] == [1, 3]
    assert report["blocked"] == [
        {
            "xsa": 2,
            "commit": xenlike.shas["xsa2"],
            "paths": ["xen/common/sched.c"],
            "reason": "conflict",
            "detail": "",
        }
    ]
    note = _git(bot.mirror, "notes", "--ref", "xsabot", "show", _tip(bot.mirror))
    record = json.loads(note_json(note) or "")["records"]["xsa/4.19"]
    assert [x["state"] for x in record["xsas"]] == ["applied", "blocked", "applied"]


def test_json_has_the_documented_fields(bot: Bot, xenlike: XenLike) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (5, ["xsa5"])))
    report = _only(_reconcile(bot, "--dry-run"))
    assert list(report)[:8] == [
        "manifest",
        "branch",
        "base",
        "tip",
        "action",
        "applied",
        "already_applied",
        "blocked",
    ]
    assert report["manifest"] == "4.19"
    assert report["already_applied"] == [5]
    assert report["published"] is False


def test_plan_and_dry_run_publish_nothing(bot: Bot, xenlike: XenLike) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    plan = bot("plan")
    assert plan.status == 0
    assert "4.19: would create xsa/4.19" in plan.out
    assert not bot.mirror.exists()  # not even an empty mirror is made
    _reconcile(bot, "--dry-run")
    assert not bot.mirror.exists()
    assert bot("status").status == 1  # "not published yet"
    assert not bot.mirror.exists()
    _reconcile(bot)
    published = _git(bot.mirror, "for-each-ref")
    assert published.count("\n") == 1
    assert "refs/heads/xsa/4.19" in published and "refs/notes/xsabot" in published
    assert bot("plan").status == 0  # and a plan after it writes nothing either
    assert _git(bot.mirror, "for-each-ref") == published


def test_a_broken_manifest_stops_only_its_branch(bot: Bot, xenlike: XenLike) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    bot.write("4.18", manifest(xenlike, (1, ["xsa1"]), branch="xsa/4.18") + "bogus: 1\n")
    data = _reconcile(bot)
    assert data["status"] == 1
    by_name = {b["manifest"]: b for b in data["branches"]}
    assert by_name["4.18"]["action"] == "error"
    assert any("bogus" in p for p in by_name["4.18"]["problems"])
    assert by_name["4.19"]["published"] is True
    assert _git(bot.mirror, "for-each-ref", "--format=%(refname)", "refs/heads") == (
        "refs/heads/xsa/4.19"
    )


def test_lease_failure_publishes_nothing_and_says_so(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    bot.write("4.20", manifest(xenlike, (1, ["xsa1"]), branch="xsa/4.20"))
    _reconcile(bot)
    before = _git(bot.mirror, "for-each-ref")

    from bot.app.wiring import Adapters
    from bot.git.publish import push

    def racing_push(work, mirror, updates, **kw):  # type: ignore[no-untyped-def]
        # Another replica (or a human) moves one branch after our fetch, before our push.
        _git(Path(mirror), "update-ref", "refs/heads/xsa/4.20", xenlike.shas["release"])
        return push(work, mirror, updates, **kw)

    bot.adapters = Adapters(push=racing_push)
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    bot.write("4.20", manifest(xenlike, (3, ["xsa3a", "xsa3b"]), branch="xsa/4.20"))
    data = _reconcile(bot)
    assert data["status"] == 1
    for report in data["branches"]:
        assert report["action"] == "error"
        assert report["published"] is False
        assert any("lease" in p for p in report["problems"])
    after = _git(bot.mirror, "for-each-ref")
    # Only the racer's own change is there: 4.19 and the notes did not move.
    assert [line for line in after.splitlines() if "xsa/4.20" not in line] == [
        line for line in before.splitlines() if "xsa/4.20" not in line
    ]


def test_copy_upstream_refs_puts_tags_and_sources_in_the_same_push(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    config = tmp_path / "xsabot.yaml"
    config.write_text(
        f"trees:\n  xen:\n    upstream: {xenlike.path}\n    mirror: {bot.mirror}\n"
        "    copy_upstream_refs: true\n"
    )
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    run = bot("reconcile", "--config", str(config))
    assert run.status == 0, run.out + run.err
    refs = _git(bot.mirror, "for-each-ref", "--format=%(refname) %(objectname)")
    copies = "refs/xsabot/upstream/"
    assert f"{copies}tags/RELEASE-4.19.0 {xenlike.shas['release']}" in refs
    assert f"{copies}heads/stable-4.19 {xenlike.shas['xsa5']}" in refs
    assert "heads/master" not in refs  # only what the manifests use
    # Upstream moves on; the next pass follows it, and a second pass has nothing to push.
    xenlike.builder.checkout("stable-4.19")
    newer = xenlike.builder.commit("tools: later backport\n", {"tools/x.c": "x\n"})
    assert bot("reconcile", "--config", str(config)).status == 0
    assert _git(bot.mirror, "rev-parse", f"{copies}heads/stable-4.19") == newer


def test_upstream_environment_variable_points_a_tree_at_a_local_clone(
    bot: Bot, xenlike: XenLike, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli.main import main

    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    monkeypatch.setenv("XSABOT_UPSTREAM_XEN", str(xenlike.path))
    status = main(["plan", "--manifests", str(bot.manifests), "--state", str(bot.state)])
    assert status == 0
    assert "would create xsa/4.19" in bot.capsys.readouterr().out


def test_relative_upstream_and_mirror_paths_are_taken_from_the_current_directory(
    bot: Bot, xenlike: XenLike, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    monkeypatch.chdir(tmp_path)
    from bot.cli.main import main

    argv = [
        "reconcile",
        "--manifests",
        "manifests",
        "--state",
        "state",
        "--upstream",
        f"xen={xenlike.path.name}",
        "--mirror",
        "xen=relative-mirror.git",
    ]
    assert main(argv) == 0, bot.capsys.readouterr()
    assert _tip(tmp_path / "relative-mirror.git")
    assert main(argv) == 0  # and again: a no-op pass through the same relative paths


def test_a_fix_not_yet_on_the_source_stops_the_branch_until_the_source_has_it(
    bot: Bot, xenlike: XenLike
) -> None:
    # Published, the fix would be a blocked XSA the next pass could drop again: the branch
    # waits instead, with the line to look at, and publishes once staging graduates.
    b = xenlike.builder
    b.branch("staging-4.19", "stable-4.19")
    b.checkout("staging-4.19")
    fix = b.commit("x86: later fix\n\nThis is XSA-6.\n", {"xen/arch/x86/new.c": "fix\n"})
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), {"xsa": 6, "commits": f"[{fix}]"}))
    first = _reconcile(bot)
    assert (first["status"], _only(first)["action"], _only(first)["published"]) == (
        1,
        "error",
        False,
    )
    (problem,) = _only(first)["problems"]
    assert problem.startswith(f"{path}:") and ": xsas[1].commits[0]: " in problem
    assert problem.endswith(
        "is not on `stable-4.19` after `RELEASE-4.19.0` (it is on `staging-4.19`)"
    )
    assert _git(bot.mirror, "for-each-ref", "refs/heads/") == ""  # nothing published
    b.checkout("stable-4.19")
    b.repo.git.merge("--ff-only", "staging-4.19")  # staging graduates to stable
    moved = _only(_reconcile(bot))
    assert moved["rebuilt"] is True and moved["applied"] == [1, 6]
    assert moved["action"] == "create"


def test_renaming_a_patch_file_rebuilds(bot: Bot, xenlike: XenLike) -> None:
    b = xenlike.builder
    b.branch("advisory", xenlike.shas["release"])
    b.checkout("advisory")
    b.commit("x86: advisory fix\n\nThis is XSA-6.\n", {"xen/arch/x86/adv.c": "fix\n"})
    data = subprocess.run(
        ["git", "-C", str(xenlike.path), "format-patch", "-1", "--stdout"],
        check=True,
        capture_output=True,
    ).stdout
    digest = hashlib.sha256(data).hexdigest()
    for name in ("xsa6.patch", "xsa6-4.19.patch"):
        (bot.manifests / name).write_bytes(data)
        bot.write(
            "4.19",
            manifest(xenlike, {"xsa": 6, "patches": f"[{{path: {name}, sha256: {digest}}}]"}),
        )
        report = _only(_reconcile(bot))
        assert report["rebuilt"] is True  # the name is in the provenance line
        body = _git(bot.mirror, "log", "-1", "--format=%B", report["build"])
        assert f"advisory patch {name} sha256" in body


def test_two_manifests_building_the_same_commit_keep_their_own_records(
    bot: Bot, xenlike: XenLike
) -> None:
    bot.write("a", manifest(xenlike, (1, ["xsa1"]), branch="xsa/a"))
    bot.write(
        "b",
        manifest(
            xenlike,
            (1, ["xsa1"]),
            {"xsa": 9, "status": "not-affected", "why": "arm only"},
            branch="xsa/b",
        ),
    )
    first = {r["manifest"]: r for r in _reconcile(bot)["branches"]}
    assert first["a"]["tip"] == first["b"]["tip"]
    notes = _git(bot.mirror, "rev-parse", "refs/notes/xsabot")
    again = {r["manifest"]: r for r in _reconcile(bot)["branches"]}
    assert [again[m]["rebuilt"] for m in "ab"] == [False, False]
    assert again["b"]["not_applied"] == [9] and again["a"]["not_applied"] == []
    assert _git(bot.mirror, "rev-parse", "refs/notes/xsabot") == notes  # no churn


def test_an_input_change_that_builds_the_same_commits_publishes_no_new_commit(
    bot: Bot, xenlike: XenLike
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    first = _only(_reconcile(bot))
    bot.write(
        "4.19",
        manifest(xenlike, (1, ["xsa1"]), {"xsa": 9, "status": "not-affected", "why": "arm only"}),
    )
    second = _only(_reconcile(bot))
    assert second["rebuilt"] is True
    assert (second["action"], second["tip"]) == ("none", first["tip"])
    assert second["not_applied"] == [9]
    assert _tip(bot.mirror) == first["tip"]
    assert _only(_reconcile(bot))["rebuilt"] is False  # and the new record is what is read back


def test_an_unreachable_upstream_is_an_environment_error(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    from bot.cli.main import main

    argv = [
        "reconcile",
        "--manifests",
        str(bot.manifests),
        "--state",
        str(bot.state),
        "--upstream",
        f"xen={tmp_path / 'nowhere'}",
    ]
    assert main(argv) == 2  # not 1: nothing is blocked, the machine is not set up
    (tmp_path / "a-file").write_text("x")
    argv[-1] = f"xen={xenlike.path}"
    assert main([*argv, "--mirror", f"xen={tmp_path / 'a-file'}"]) == 2
    assert "not a bare git repository" in bot.capsys.readouterr().out
