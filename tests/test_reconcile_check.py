"""The check gate in a reconcile pass: publish what builds, propose what makes the rest build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.cli.main import main
from tests.cproject import BUILD, Project, make_project
from tests.gitrepo import RepoBuilder

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make"
)


def _manifest(p: Project) -> str:
    return (
        "base: RELEASE-1.0\nsource: stable-1.0\nbranch: xsa/1.0\nxsas:\n"
        f"  - xsa: 1\n    commits: [{p.shas['xsa1']}]\n"
        f"  - xsa: 2\n    commits: [{p.shas['xsa2']}]\n"
        f"  - xsa: 3\n    commits: [{p.shas['xsa3']}]\n"
    )


def _world(tmp_path: Path) -> tuple[Project, Path]:
    """The C project upstream and a manifests dir (not a git repository) listing XSA 1-3."""
    project = make_project(tmp_path / "upstream")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "1.0.yaml").write_text(_manifest(project))
    return project, manifests


def _reconcile(tmp_path: Path, project: Project, manifests: Path, capsys, check=BUILD) -> dict:  # type: ignore[no-untyped-def]
    argv = [
        "reconcile",
        "--json",
        "--manifests",
        str(manifests),
        "--state",
        str(tmp_path / "state"),
        "--upstream",
        f"xen={project.path}",
        "--check",
        f"xen={check}",
    ]
    status = main(argv)
    data = json.loads(capsys.readouterr().out)
    data["status"] = status
    return data


def test_gate_publishes_what_builds_and_proposes_the_missing_commits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path / "upstream")
    repo = RepoBuilder(tmp_path / "manifests-repo")
    repo.commit("add 1.0\n", {"manifests/1.0.yaml": _manifest(project)})
    manifests = repo.path / "manifests"

    first = _reconcile(tmp_path, project, manifests, capsys)
    [branch] = first["branches"]
    assert first["status"] == 1
    assert branch["published"] is True and branch["applied"] == [2]
    assert [(b["xsa"], b["reason"]) for b in branch["blocked"]] == [
        (1, "does-not-build"),
        (3, "does-not-build"),
    ]
    assert branch["check"]["held_back"] == [1, 3]
    assert branch["check"]["passed"] is True
    by_xsa = {p["xsa"]: p for p in first["proposals"]}
    assert sorted(by_xsa) == [1, 3]
    edit = repo.repo.git.show("xsabot/1.0/xsa-1:manifests/1.0.yaml")
    assert f"commit: {project.shas['clamp']}" in edit
    # The searches' verification checks move the line's build directory, a few commits
    # from the gate's trees, rather than export and build from scratch.
    results = tmp_path / "state" / "checks" / "results"
    gate_trees = set(branch["check"]["trees_checked"])
    verified = [json.loads(p.read_text()) for p in results.iterdir() if p.stem not in gate_trees]
    assert [r["incremental"] for r in verified if r["status"] == "passed"] == [True, True]

    # Unchanged inputs: no build, and above all no check is run again.
    checks = sorted((tmp_path / "state" / "checks" / "results").iterdir())
    again = _reconcile(tmp_path, project, manifests, capsys)
    assert again["branches"][0]["rebuilt"] is False
    assert sorted((tmp_path / "state" / "checks" / "results").iterdir()) == checks

    for p in first["proposals"]:
        repo.repo.git.merge(p["branch"])  # volunteers merge both proposals
    last = _reconcile(tmp_path, project, manifests, capsys)
    [branch] = last["branches"]
    assert last["status"] == 0, last
    assert branch["applied"] == [1, 2, 3] and branch["blocked"] == []
    assert branch["check"] == {**branch["check"], "passed": True, "held_back": []}


def test_a_base_that_fails_the_check_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, manifests = _world(tmp_path)
    data = _reconcile(tmp_path, project, manifests, capsys, check="false")
    [branch] = data["branches"]
    assert data["status"] == 1
    assert branch["published"] is False and branch["check"]["base_fails"] is True
    assert "fails the check itself" in branch["problems"][0]


def test_a_plan_runs_no_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plan may be of an unmerged merge request: its content never runs in the bot."""
    project, manifests = _world(tmp_path)
    ran = tmp_path / "ran"
    argv = [
        "plan",
        "--json",
        "--manifests",
        str(manifests),
        "--state",
        str(tmp_path / "state"),
        "--upstream",
        f"xen={project.path}",
        "--check",
        f"xen=touch {ran}",
    ]
    assert main(argv) == 0
    [branch] = json.loads(capsys.readouterr().out)["branches"]
    assert branch["check"]["skipped"] == "a plan runs no check"
    assert not ran.exists()


def test_build_with_the_held_back_xsas_reproduces_the_gated_branch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, manifests = _world(tmp_path)
    data = _reconcile(tmp_path, project, manifests, capsys)
    [branch] = data["branches"]
    held = branch["check"]["held_back"]
    assert held == [1, 3]
    argv = [
        "build",
        str(manifests / "1.0.yaml"),
        "--state",
        str(tmp_path / "elsewhere"),
        "--upstream",
        str(project.path),
    ]
    for xsa in held:
        argv += ["--hold-back", str(xsa)]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == branch["build"]


def test_a_check_that_times_out_stops_only_its_branch_and_is_tried_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, manifests = _world(tmp_path)
    config = tmp_path / "xsabot.yaml"
    config.write_text(
        f"trees:\n  xen:\n    upstream: {project.path}\n    check: sleep 5\n    check_timeout: 1\n"
    )
    argv = [
        "reconcile",
        "--json",
        "--config",
        str(config),
        "--manifests",
        str(manifests),
        "--state",
        str(tmp_path / "state"),
    ]
    assert main(argv) == 1
    [branch] = json.loads(capsys.readouterr().out)["branches"]
    assert branch["published"] is False and branch["blocked"] == []
    assert "timed out" in branch["problems"][0]
    config.write_text(f"trees:\n  xen:\n    upstream: {project.path}\n    check: 'true'\n")
    assert main(argv) == 0  # the next pass checks again, and publishes
    [branch] = json.loads(capsys.readouterr().out)["branches"]
    assert branch["published"] is True and branch["applied"] == [1, 2, 3]


def test_an_xsa_that_applies_only_with_a_held_back_one_gets_its_build_set_in_the_same_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """XSA-4 changes the line XSA-1 changed (it conflicts while XSA-1 is held back) and uses
    util_sq(), which a non-XSA commit declares. One pass proposes both sets: XSA-1's, and
    XSA-4's as if XSA-1's were merged. Once both are merged, the next pass publishes every
    XSA and runs no check at all: the first pass checked that very tree."""
    project = make_project(tmp_path / "upstream")
    b = project.upstream
    sq = b.commit(
        "util: add util_sq()\n",
        {
            "util.h": b.read("util.h").replace(
                "int util_clamp(int v, int hi);",
                "int util_clamp(int v, int hi);\nstatic inline int util_sq(int v) { return v * v; }",
            )
        },
    )
    xsa4 = b.commit(
        "main: square it\n\nThis is XSA-4.\n",
        {
            "main.c": b.read("main.c").replace(
                "util_clamp(util_add(1, 2), 3)", "util_clamp(util_sq(1), 3) + 2"
            )
        },
    )
    repo = RepoBuilder(tmp_path / "manifests-repo")
    text = (
        "base: RELEASE-1.0\nsource: stable-1.0\nbranch: xsa/1.0\nxsas:\n"
        f"  - xsa: 1\n    commits: [{project.shas['xsa1']}]\n"
        f"  - xsa: 2\n    commits: [{project.shas['xsa2']}]\n"
        f"  - xsa: 4\n    commits: [{xsa4}]\n"
    )
    repo.commit("add 1.0\n", {"manifests/1.0.yaml": text})
    manifests = repo.path / "manifests"

    first = _reconcile(tmp_path, project, manifests, capsys)
    [branch] = first["branches"]
    assert branch["published"] is True and branch["applied"] == [2]
    assert branch["check"]["held_back"] == [1]
    by_xsa = {p["xsa"]: p for p in first["proposals"]}
    assert sorted(by_xsa) == [1, 4], first["proposals"]
    assert f"commit: {project.shas['clamp']}" in repo.repo.git.show(
        "xsabot/1.0/xsa-1:manifests/1.0.yaml"
    )
    four = repo.repo.git.show("xsabot/1.0/xsa-4:manifests/1.0.yaml")
    assert f"commit: {sq}" in four and project.shas["clamp"] not in four
    # The proposal step's checks are in the report: XSA-1's and XSA-4's verification builds,
    # and the branch with both sets merged.
    searched = first["search_checks"]
    assert len(searched) >= 3 and all(r["seconds"] >= 0 for r in searched)
    assert searched[-1]["passed"] is True
    body = json.loads(Path(by_xsa[4]["url"].removeprefix("file://")).read_text())["body"]
    assert "proposals for XSA-1 (opened in the same pass) as merged: merge it first" in body

    results = tmp_path / "state" / "checks" / "results"
    checked = sorted(results.iterdir())
    for p in first["proposals"]:
        repo.repo.git.merge(p["branch"])
    last = _reconcile(tmp_path, project, manifests, capsys)
    [branch] = last["branches"]
    assert last["status"] == 0, last
    assert branch["applied"] == [1, 2, 4] and branch["blocked"] == []
    assert branch["check"]["passed"] is True and branch["check"]["checks_run"] == 0
    assert sorted(results.iterdir()) == checked


def test_an_xsa_that_breaks_the_build_with_the_sets_merged_and_has_no_set_is_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """XSA-4 applies only with XSA-1 and then calls a function no commit adds: the proposal
    step says it does not build even then, and why, and proposes XSA-1's set alone."""
    project = make_project(tmp_path / "upstream")
    b = project.upstream
    xsa4 = b.commit(
        "main: call what nobody wrote\n\nThis is XSA-4.\n",
        {
            "main.c": b.read("main.c").replace(
                "util_clamp(util_add(1, 2), 3)", "util_clamp(util_nowhere(1), 3) + 2"
            )
        },
    )
    repo = RepoBuilder(tmp_path / "manifests-repo")
    text = (
        "base: RELEASE-1.0\nsource: stable-1.0\nbranch: xsa/1.0\nxsas:\n"
        f"  - xsa: 1\n    commits: [{project.shas['xsa1']}]\n"
        f"  - xsa: 4\n    commits: [{xsa4}]\n"
    )
    repo.commit("add 1.0\n", {"manifests/1.0.yaml": text})
    first = _reconcile(tmp_path, project, repo.path / "manifests", capsys)
    [branch] = first["branches"]
    assert branch["check"]["held_back"] == [1]
    proposals = {p["xsa"]: p for p in first["proposals"]}
    assert proposals[1]["draft"] is False and "XSA-1 builds" in proposals[1]["title"]
    assert proposals[4]["draft"] is True and "mark XSA-4 blocked" in proposals[4]["title"]
    body = json.loads(Path(proposals[4]["url"].removeprefix("file://")).read_text())["body"]
    assert "implicit declaration of function 'util_nowhere'" in body
    assert "proposals for XSA-1 (opened in the same pass) as merged: this is what" in body
    assert f"commit: {project.shas['clamp']}" not in repo.repo.git.show(
        "xsabot/1.0/xsa-4:manifests/1.0.yaml"
    )
