"""`xsabot reconcile` opens, keeps, and closes its proposals on the local forge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Bot
from tests.gitrepo import RepoBuilder, XenLike
from tests.manifests import manifest


@pytest.fixture
def repo_bot(bot: Bot, tmp_path: Path) -> tuple[Bot, RepoBuilder]:
    """The bot with its manifests in a git repository, as the embedded default has them."""
    manifests_repo = RepoBuilder(tmp_path / "manifests-repo")
    bot.manifests = manifests_repo.path / "manifests"
    return bot, manifests_repo


def _reconcile(bot: Bot) -> dict:
    run = bot("reconcile", "--json")
    data = json.loads(run.out)
    data["status"] = run.status
    return data


def test_blocked_xsa_gets_one_proposal_that_merging_makes_published(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    text = "# XSAs for 4.19: keep in stable order\n" + manifest(
        xenlike, (1, ["xsa1"]), (2, ["xsa2"])
    )
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": text})

    first = _reconcile(bot)
    assert first["status"] == 1
    [opened] = first["proposals"]
    assert (opened["action"], opened["branch"], opened["draft"]) == (
        "open",
        "xsabot/4.19/xsa-2",
        False,
    )
    edited = repo.repo.git.show("xsabot/4.19/xsa-2:manifests/4.19.yaml")
    assert edited.startswith("# XSAs for 4.19: keep in stable order\n")
    assert f"commit: {xenlike.shas['prereq']}" in edited
    branch_tip = repo.rev("xsabot/4.19/xsa-2")

    second = _reconcile(bot)  # nothing changed: no build, one forge listing, nothing touched
    assert second["proposals"] == [] and second["branches"][0]["rebuilt"] is False
    assert repo.rev("xsabot/4.19/xsa-2") == branch_tip
    assert "proposal !1: 4.19: add 1 prerequisite for XSA-2" in bot("status").out

    repo.repo.git.merge("xsabot/4.19/xsa-2")  # a volunteer merges the proposal
    third = _reconcile(bot)
    assert third["status"] == 0, third
    [branch] = third["branches"]
    assert branch["applied"] == [1, 2] and branch["published"] is True
    [merged] = third["proposals"]  # merged: told once, nothing to open, nothing to close
    assert (merged["action"], merged["branch"]) == ("merged", "xsabot/4.19/xsa-2")
    assert _reconcile(bot)["proposals"] == []

    run = bot("status")
    assert "proposal" not in run.out


def test_a_manifest_change_that_makes_the_proposal_moot_closes_it(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    repo.commit("add\n", {"manifests/4.19.yaml": manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]))})
    [opened] = _reconcile(bot)["proposals"]
    assert "proposal !" in bot("status").out

    repo.commit("drop XSA-2\n", {"manifests/4.19.yaml": manifest(xenlike, (1, ["xsa1"]))})
    data = _reconcile(bot)
    assert data["status"] == 0
    [closed] = data["proposals"]
    assert (closed["action"], closed["branch"], closed["state"]) == (
        "close",
        opened["branch"],
        "closed",
    )
    assert _reconcile(bot)["proposals"] == []  # closed once, not again


def test_an_xsa_that_needs_a_blocked_xsa_waits_instead_of_getting_a_proposal(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    text = manifest(
        xenlike,
        {
            "xsa": 3,
            "commits": f"[{xenlike.shas['xsa3a']}, {xenlike.shas['xsa3b']}]",
            "status": "blocked",
            "why": "waiting for a manual backport",
        },
        (4, ["xsa4"]),  # changes a line XSA-3 introduced
    )
    repo.commit("add\n", {"manifests/4.19.yaml": text})
    data = _reconcile(bot)
    [branch] = data["branches"]
    assert [b["xsa"] for b in branch["blocked"]] == [4]
    assert data["proposals"] == []  # nothing a volunteer could merge would help XSA-4 alone
