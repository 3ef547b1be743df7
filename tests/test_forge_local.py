"""The local forge: the forge contract on a real repository, plus what only it promises."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, Identity
from bot.core.ports import MergeRequest, Proposal
from bot.errors import ForgeConflict, ForgeError, SetupError, UsageError
from bot.forges.local import LocalForge
from bot.forges.registry import FORGES, load_forge
from bot.git.proposal_branch import branch_tip
from bot.git.runner import git
from tests.forge_contract import *  # noqa: F403  (the contract runs against this forge)
from tests.forge_contract import (
    BRANCH,
    MANIFEST_PATH,
    PRE_A,
    PRE_B,
    finder_result,
    seed_manifests,
    sync,
)
from tests.gitrepo import RepoBuilder


@dataclass
class LocalWorld:
    forge: LocalForge
    manifests: RepoBuilder
    state: Path

    def merge(self, mr: MergeRequest) -> None:
        self.manifests.repo.git.merge("--no-ff", "--no-edit", mr.branch)

    def tip(self, branch: str) -> str | None:
        return branch_tip(self.manifests.path, branch)

    def file_on_branch(self, branch: str, path: str) -> str:
        return git(["show", f"{branch}:{path}"], cwd=self.manifests.path).stdout.decode()

    def comments(self, mr_id: int) -> list[str]:
        return [c["body"] for c in self.record(mr_id)["comments"]]

    def record(self, mr_id: int) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(
            (self.state / "proposals" / f"{mr_id}.json").read_text()
        )
        return record

    def snapshot(self) -> object:
        refs = git(["for-each-ref", "--format=%(refname) %(objectname)"], cwd=self.manifests.path)
        files = sorted(self.state.rglob("*"))
        return refs.stdout, {p: p.read_bytes() for p in files if p.is_file()}


def make_world(tmp_path: Path) -> LocalWorld:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    seed_manifests(repo)
    state = tmp_path / "state"
    return LocalWorld(LocalForge(repo.path / "manifests", state, Identity()), repo, state)


@pytest.fixture
def forge_world(tmp_path: Path) -> LocalWorld:
    return make_world(tmp_path)


def test_a_manifests_directory_outside_git_is_a_setup_error_that_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "manifests").mkdir()
    with pytest.raises(SetupError, match=r"not in a git repository.*git init"):
        LocalForge(tmp_path / "manifests", tmp_path / "state", Identity())


def test_the_record_holds_what_a_volunteer_reviews(forge_world: LocalWorld) -> None:
    [opened] = sync(forge_world, {470: finder_result(PRE_A)})
    record = forge_world.record(opened.id or 0)
    assert {k: record[k] for k in ("id", "branch", "title", "state", "draft", "comments")} == {
        "id": 1,
        "branch": BRANCH,
        "title": "4.19: add 1 prerequisite for XSA-470",
        "state": "open",
        "draft": False,
        "comments": [],
    }
    assert f"xsabot deps {MANIFEST_PATH} 470" in str(record["body"])
    assert record["head"] == forge_world.tip(BRANCH)
    author = git(["log", "-1", "--format=%an <%ae>", BRANCH], cwd=forge_world.manifests.path)
    assert author.stdout.decode().strip() == "xsabot <xsabot@xenproject.invalid>"


def test_the_work_tree_index_and_other_refs_are_never_touched(forge_world: LocalWorld) -> None:
    repo = forge_world.manifests.path

    def outside() -> tuple[bytes, bytes, bytes, bytes]:
        refs = git(["for-each-ref", "--format=%(refname) %(objectname)"], cwd=repo).stdout
        mine = b"\n".join(r for r in refs.splitlines() if b"refs/heads/xsabot/" not in r)
        status = git(
            ["--no-optional-locks", "status", "--porcelain=v2", "--branch"], cwd=repo
        ).stdout
        return (
            mine,
            status,
            (repo / ".git" / "HEAD").read_bytes(),
            (repo / ".git" / "index").read_bytes(),
        )

    before = outside()
    sync(forge_world, {470: finder_result(PRE_A)})
    sync(forge_world, {470: finder_result(PRE_A, PRE_B)})
    sync(forge_world, applied=[470])
    assert outside() == before


def test_a_manual_backport_on_a_draft_proposal_is_left_alone(forge_world: LocalWorld) -> None:
    sync(forge_world, {470: finder_result(found=False)})
    volunteer = forge_world.manifests
    volunteer.checkout(BRANCH)
    backport = volunteer.commit("Manual backport of XSA-470\n", {"patches/xsa470.patch": "diff\n"})
    volunteer.checkout("master")
    # Different evidence would update the draft, but the branch now holds a volunteer's work.
    [action] = sync(forge_world, {470: finder_result(found=False, trials=90)})
    assert action.action == "update"
    assert action.error is not None and "did not make" in action.error
    assert forge_world.tip(BRANCH) == backport
    volunteer.repo.git.merge("--no-ff", "--no-edit", BRANCH)
    found = forge_world.forge.find(BRANCH)
    assert found is not None and found.state == "merged"


def test_a_merged_proposal_stays_merged_after_its_branch_is_deleted(
    forge_world: LocalWorld,
) -> None:
    sync(forge_world, {470: finder_result(PRE_A)})
    mr = forge_world.forge.find(BRANCH)
    assert mr is not None
    forge_world.merge(mr)
    forge_world.manifests.repo.git.branch("-d", BRANCH)
    again = forge_world.forge.find(BRANCH)
    assert again is not None and again.state == "merged"
    with pytest.raises(ForgeConflict, match="merged"):
        forge_world.forge.close(again, "no")


def test_a_proposal_blocked_again_after_it_was_closed_gets_a_new_id(
    forge_world: LocalWorld,
) -> None:
    sync(forge_world, {470: finder_result(PRE_A)})
    sync(forge_world, applied=[470])
    [reopened] = sync(forge_world, {470: finder_result(PRE_B)})
    assert (reopened.action, reopened.id, reopened.state) == ("open", 2, "open")
    found = forge_world.forge.find(BRANCH)
    assert found is not None and found.id == 2
    assert [mr.id for mr in forge_world.forge.list_open()] == [2]


def test_a_checked_out_proposal_is_not_moved_under_the_volunteer(forge_world: LocalWorld) -> None:
    sync(forge_world, {470: finder_result(PRE_A)})
    forge_world.manifests.checkout(BRANCH)
    tip = forge_world.tip(BRANCH)
    [action] = sync(forge_world, {470: finder_result(PRE_A, PRE_B)})
    assert action.error is not None and "checked out" in action.error
    assert forge_world.tip(BRANCH) == tip


def test_proposals_live_only_under_the_bots_namespace(forge_world: LocalWorld) -> None:
    before = forge_world.snapshot()
    with pytest.raises(ForgeError, match="proposals live under xsabot/"):
        forge_world.forge.open(Proposal("master", "t", "b", {MANIFEST_PATH: "x"}))
    with pytest.raises(ForgeError, match="not a path inside"):
        forge_world.forge.open(Proposal(BRANCH, "t", "b", {"../escape.yaml": "x"}))
    assert forge_world.snapshot() == before


@pytest.mark.parametrize(
    ("proposal", "message"),
    [
        (Proposal("master", "t", "b", {MANIFEST_PATH: "x"}), "proposals live under xsabot/"),
        (Proposal(BRANCH, "t", "b", {"/etc/passwd": "x"}), "not a path inside"),
        (Proposal(BRANCH, "t", "b", {".git/config": "x"}), "not a path inside"),
        (Proposal(BRANCH, "t", "b", {"": "x"}), "not a path inside"),
    ],
)
def test_an_update_is_refused_by_the_same_rule_as_an_open(
    forge_world: LocalWorld, proposal: Proposal, message: str
) -> None:
    [opened] = sync(forge_world, {470: finder_result(PRE_A)})
    mr = forge_world.forge.find(BRANCH)
    assert mr is not None and opened.id == mr.id
    before = forge_world.snapshot()
    for write in (
        lambda: forge_world.forge.open(proposal),
        lambda: forge_world.forge.update(mr, proposal),
    ):
        with pytest.raises(ForgeError, match=message):
            write()
    assert forge_world.snapshot() == before


def test_every_forge_checks_proposals_with_one_function() -> None:
    # The local forge had its own copy of the rule: a rule added to one copy would have let the
    # other forges (or this one) write where the bot must not.
    from bot.forges import branch, github, gitlab, local, remote_branch

    rule = branch.check_proposal
    assert local.check_proposal is rule and remote_branch.check_proposal is rule
    assert gitlab.check_proposal is rule and github.check_proposal is rule


def test_load_forge_makes_the_local_forge_and_names_unknown_kinds(
    forge_world: LocalWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(manifests=forge_world.manifests.path / "manifests", state=forge_world.state)
    assert isinstance(load_forge(config), LocalForge)
    monkeypatch.delitem(FORGES, "local")
    with pytest.raises(UsageError, match="'local' is not available"):
        load_forge(config)
