"""Merged proposals tidy themselves: told of once, their branches removed, never another's.

Real repositories throughout: the local forge's manifests repository, and the fake GitLab and
GitHub servers (127.0.0.1) behind the real python-gitlab and PyGithub clients, whose branches
live in a real git repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.git.proposal_branch import branch_tip
from tests import test_converge as tc
from tests import test_forge_github as gh
from tests import test_forge_gitlab as gl
from tests.conftest import Bot
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.repos import run_git
from tests.fakes.repos import tip as remote_tip
from tests.forge_contract import seed_manifests
from tests.gitrepo import RepoBuilder, XenLike
from tests.manifests import manifest
from tests.test_converge import PROJECT, ForgeSetup, two_xsas
from tests.test_converge import reconcile as converge_reconcile

BRANCH = "xsabot/4.19/xsa-2"
forge_setup, forge_bot = tc.forge_setup, tc.forge_bot  # the converge tests' GitLab/GitHub


@pytest.fixture
def repo_bot(bot: Bot, tmp_path: Path) -> tuple[Bot, RepoBuilder]:
    """The bot with its manifests in a git repository: the local forge."""
    manifests_repo = RepoBuilder(tmp_path / "manifests-repo")
    bot.manifests = manifests_repo.path / "manifests"
    return bot, manifests_repo


def _reconcile(bot: Bot) -> dict:
    return json.loads(bot("reconcile", "--json").out)


def _proposed(bot: Bot, repo: RepoBuilder, xenlike: XenLike) -> dict:
    """XSA-2 blocked on a prerequisite the bot finds: it opens one proposal."""
    repo.commit(
        "add 4.19\n", {"manifests/4.19.yaml": manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]))}
    )
    [opened] = _reconcile(bot)["proposals"]
    assert (opened["action"], opened["branch"]) == ("open", BRANCH)
    return opened


def _record(bot: Bot, mr_id: int) -> dict:
    return json.loads((bot.state / "proposals" / f"{mr_id}.json").read_text())


def test_a_merged_local_proposal_is_recorded_merged_its_branch_removed_and_told_once(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    opened = _proposed(bot, repo, xenlike)
    repo.repo.git.merge("--no-ff", "--no-edit", BRANCH)  # a volunteer merges it

    run = bot("reconcile")
    assert run.status == 0, run.out + run.err
    assert f"proposal {BRANCH}: merged; branch removed" in run.out.splitlines()
    assert branch_tip(repo.path, BRANCH) is None
    assert _record(bot, opened["id"])["state"] == "merged"

    again = _reconcile(bot)
    assert again["proposals"] == []  # told once: the record says so now
    assert _record(bot, opened["id"])["state"] == "merged"


def test_the_merged_action_is_in_the_json_report(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    opened = _proposed(bot, repo, xenlike)
    repo.repo.git.merge(BRANCH)  # a fast-forward merge counts as well
    [merged] = _reconcile(bot)["proposals"]
    assert (merged["action"], merged["branch"], merged["id"], merged["state"]) == (
        "merged",
        BRANCH,
        opened["id"],
        "merged",
    )
    assert (merged["manifest"], merged["xsa"], merged["reason"]) == ("4.19", 2, "branch removed")


def test_an_unmerged_proposal_keeps_its_branch_and_is_not_told_of(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    _proposed(bot, repo, xenlike)
    tip = branch_tip(repo.path, BRANCH)
    assert _reconcile(bot)["proposals"] == []
    assert branch_tip(repo.path, BRANCH) == tip


def test_a_maintainers_own_xsabot_branch_merged_into_default_is_never_deleted(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    _proposed(bot, repo, xenlike)
    # A branch of the maintainer's under xsabot/, no trailer, merged: not the bot's to delete.
    repo.branch("xsabot/4.19/xsa-9")
    repo.checkout("xsabot/4.19/xsa-9")
    own = repo.commit("notes of mine\n", {"NOTES": "mine\n"})
    repo.checkout("master" if "master" in repo.repo.heads else "main")
    repo.repo.git.merge("--no-ff", "--no-edit", "xsabot/4.19/xsa-9")
    # And the maintainer's commit on top of the bot's proposal, merged: told, branch kept.
    repo.checkout(BRANCH)
    theirs = repo.commit("my backport\n", {"manifests/extra.txt": "x\n"})
    repo.checkout("master" if "master" in repo.repo.heads else "main")
    repo.repo.git.merge("--no-ff", "--no-edit", BRANCH)

    [merged] = _reconcile(bot)["proposals"]
    assert (merged["action"], merged["branch"]) == ("merged", BRANCH)
    assert merged["reason"].startswith("branch kept")
    assert branch_tip(repo.path, BRANCH) == theirs
    assert branch_tip(repo.path, "xsabot/4.19/xsa-9") == own
    assert _reconcile(bot)["proposals"] == []
    assert branch_tip(repo.path, "xsabot/4.19/xsa-9") == own


def test_a_proposal_no_longer_needed_is_closed_with_a_comment_saying_why(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    opened = _proposed(bot, repo, xenlike)
    # The maintainer adds the prerequisite by hand instead of merging: XSA-2 applies now.
    edited = repo.repo.git.show(f"{BRANCH}:manifests/4.19.yaml")
    repo.commit("add the prerequisite myself\n", {"manifests/4.19.yaml": edited + "# by hand\n"})

    [closed] = _reconcile(bot)["proposals"]
    assert (closed["action"], closed["branch"], closed["state"]) == ("close", BRANCH, "closed")
    assert closed["reason"] == "XSA applies now"
    [comment] = [c["body"] for c in _record(bot, opened["id"])["comments"]]
    assert comment.startswith("XSA-2 now applies to `xsa/4.19` without this change")
    assert _reconcile(bot)["proposals"] == []


# --- GitLab and GitHub ------------------------------------------------------------------------


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    server = FakeGitLab(gl.TOKEN, prefix="/gitlab")
    server.start()
    yield server
    server.stop()
    assert not server.unknown, f"requests the fake does not know: {server.unknown}"
    assert not server.errors, server.errors[0]


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub(gh.TOKEN, prefix="/api/v3")
    server.start()
    yield server
    server.stop()
    assert not server.unknown, f"requests the fake does not know: {server.unknown}"
    assert not server.errors, server.errors[0]


def _seeded(tmp_path: Path) -> RepoBuilder:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    seed_manifests(repo)
    return repo


def test_gitlab_a_merged_bot_merge_request_has_its_branch_removed_and_told_once(
    gitlab: FakeGitLab, tmp_path: Path
) -> None:
    repo = _seeded(tmp_path)
    gitlab.add_project(gl.PROJECT, default_branch="master")
    forge = gl.make_forge(gitlab, tmp_path, repo.path)
    mr = forge.open(gl.proposal(xsa=2))
    other = forge.open(gl.proposal(xsa=3))
    gitlab.requests.clear()
    assert forge.tidy_merged(forge.list_open()) == []  # nothing merged yet
    assert len(gitlab.calls("GET", "/merge_requests$")) == 1  # the open listing alone

    repo.repo.git.merge("--no-ff", "--no-edit", mr.branch)
    gitlab.mr(gl.PROJECT, mr.id)["state"] = "merged"
    [merged] = forge.tidy_merged([])
    assert (merged.mr.id, merged.mr.branch, merged.mr.state) == (mr.id, mr.branch, "merged")
    assert merged.branch_removed
    assert branch_tip(repo.path, mr.branch) is None
    assert branch_tip(repo.path, other.branch) is not None  # open: left alone
    assert forge.tidy_merged([]) == []  # the branch's absence is the record


def test_gitlab_a_merged_branch_with_someone_elses_commit_stays(
    gitlab: FakeGitLab, tmp_path: Path
) -> None:
    repo = _seeded(tmp_path)
    gitlab.add_project(gl.PROJECT, default_branch="master")
    forge = gl.make_forge(gitlab, tmp_path, repo.path)
    mr = forge.open(gl.proposal(xsa=2))
    repo.checkout(mr.branch)
    theirs = repo.commit("my backport\n", {"extra.txt": "x\n"})
    repo.checkout("master")
    repo.repo.git.merge("--no-ff", "--no-edit", mr.branch)
    gitlab.mr(gl.PROJECT, mr.id)["state"] = "merged"
    assert forge.tidy_merged([]) == []
    assert branch_tip(repo.path, mr.branch) == theirs


def test_github_a_merged_bot_pull_request_has_its_branch_removed_and_told_once(
    github: FakeGitHub, tmp_path: Path
) -> None:
    repo = _seeded(tmp_path)
    github.add_repo(gh.REPO, default_branch="master", git_dir=repo.path)
    forge = gh.make_forge(github, tmp_path, repo.path)
    mr = forge.open(gh.proposal(xsa=2))
    other = forge.open(gh.proposal(xsa=3))
    assert forge.tidy_merged([]) == []

    repo.repo.git.merge("--no-ff", "--no-edit", mr.branch)
    github.merge(gh.REPO, mr.id)
    [merged] = forge.tidy_merged([])
    assert (merged.mr.id, merged.mr.branch, merged.mr.state) == (mr.id, mr.branch, "merged")
    assert merged.branch_removed
    assert branch_tip(repo.path, mr.branch) is None
    assert branch_tip(repo.path, other.branch) is not None
    assert forge.tidy_merged([]) == []


def test_a_merged_gitlab_or_github_proposal_is_told_once_by_reconcile_and_its_branch_goes(
    forge_bot: Bot, forge_setup: ForgeSetup, xenlike: XenLike
) -> None:
    forge_setup.seed(two_xsas(xenlike))
    [opened] = converge_reconcile(forge_bot)["proposals"]
    assert (opened["action"], opened["branch"]) == ("open", BRANCH)

    # A maintainer merges it on the forge: the default branch gets it, the MR says merged.
    checkout = forge_setup.checkout
    run_git("fetch", "--quiet", str(forge_setup.remote), BRANCH, cwd=checkout.path)
    run_git("merge", "--quiet", "--no-ff", "--no-edit", "FETCH_HEAD", cwd=checkout.path)
    run_git("push", "--quiet", str(forge_setup.remote), "main", cwd=checkout.path)
    if isinstance(forge_setup.server, FakeGitLab):
        forge_setup.server.mr(PROJECT, opened["id"])["state"] = "merged"
    else:
        forge_setup.server.merge(PROJECT, opened["id"])

    run = forge_bot("reconcile")
    assert f"proposal {BRANCH}: merged; branch removed" in run.out.splitlines(), run.out
    assert remote_tip(forge_setup.remote, BRANCH) is None
    again = converge_reconcile(forge_bot)
    assert again["proposals"] == [] and again["errors"] == []
