"""`xsabot plan --mr`: the plan of a merge request's manifests, posted on it and kept current."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gitlab
import pytest

from tests.conftest import Bot
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.repos import bare_manifests_repo
from tests.gitrepo import XenLike
from tests.manifests import manifest

TOKEN = "glpat-PlanT0k3nNeverShown"
PROJECT = "xen-project/xsa-manifests"


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    server = FakeGitLab(TOKEN)
    server.start()
    yield server
    server.stop()
    assert not server.unknown, server.unknown


@pytest.fixture
def config(fake: FakeGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake.add_project(PROJECT)
    remote = bare_manifests_repo(tmp_path)
    monkeypatch.setenv("XSABOT_TEST_TOKEN", TOKEN)
    path = tmp_path / "xsabot.yaml"
    path.write_text(
        f"forge:\n  kind: gitlab\n  url: {fake.url}\n  project: {PROJECT}\n"
        f"  git_url: {remote}\n  token_env: XSABOT_TEST_TOKEN\n"
    )
    return path


def _volunteer_mr(fake: FakeGitLab) -> int:
    """A volunteer's merge request, opened with the real client as a person would."""
    gl = gitlab.Gitlab(fake.url, private_token=TOKEN)
    mr = gl.projects.get(PROJECT).mergerequests.create(
        {"source_branch": "add-xsa-3", "target_branch": "main", "title": "4.19: add XSA-3"}
    )
    return int(mr.iid)


def test_plan_is_posted_once_and_edited_in_place(
    bot: Bot, xenlike: XenLike, fake: FakeGitLab, config: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    assert bot("reconcile", "--config", str(config)).status == 0  # the published state
    iid = _volunteer_mr(fake)

    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]), (3, ["xsa3a", "xsa3b"])))
    run = bot("plan", "--config", str(config), "--mr", str(iid))
    assert run.status == 1  # XSA-2 would be blocked
    [note] = fake.mr_notes(PROJECT, iid)
    body = str(note["body"])
    assert "**4.19** `xsa/4.19` (base `RELEASE-4.19.0`): fast-forward" in body
    assert "- added: XSA-3" in body
    assert "- blocked: XSA-2 (conflict: `xen/common/sched.c`)" in body
    assert TOKEN not in run.out + run.err + body

    # The volunteer fixes the MR; the next plan edits the same comment.
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    assert bot("plan", "--config", str(config), "--mr", str(iid)).status == 0
    [edited] = fake.mr_notes(PROJECT, iid)
    assert edited["id"] == note["id"]
    assert "blocked" not in str(edited["body"])
    # Nothing was published from the unmerged MR.
    assert bot("status").out.count("XSAs applied: 1\n") == 1


def test_plan_finds_its_merge_request_from_gitlab_ci_variables(
    bot: Bot, xenlike: XenLike, fake: FakeGitLab, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    iid = _volunteer_mr(fake)
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", str(iid))
    monkeypatch.setenv("CI_PROJECT_PATH", PROJECT)
    assert bot("plan", "--config", str(config), "--mr").status == 0
    [note] = fake.mr_notes(PROJECT, iid)
    assert "**4.19** `xsa/4.19` (base `RELEASE-4.19.0`): create" in str(note["body"])


def test_plan_mr_outside_a_pipeline_is_a_usage_error(bot: Bot, xenlike: XenLike) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    run = bot("plan", "--mr")
    assert run.status == 2
    assert "merge request pipeline" in run.err
