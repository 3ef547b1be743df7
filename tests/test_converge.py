"""Proposals converge: whatever stopped a pass's proposal step, the next pass completes it.

What proposals should exist follows from the manifests and the build records in the mirror,
not from whether a pass rebuilt anything; the bot knows its own proposal branches and merge
requests by what it writes in them, not by its state dir. Real git repositories, the real
local forge, and the fake GitLab and GitHub servers on 127.0.0.1 driven by python-gitlab and
PyGithub.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bot.app.wiring import Adapters
from bot.config import Config, ForgeConfig, Identity
from bot.core.ports import Forge
from bot.core.record import note_records
from bot.forges.github import GitHubForge
from bot.forges.gitlab import GitLabForge
from bot.forges.http import RetryPolicy
from bot.git.runner import git_text
from bot.manifest import edit
from tests.conftest import Bot
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.repos import run_git, tip
from tests.gitrepo import RepoBuilder, XenLike
from tests.manifests import manifest

GITLAB_TOKEN = "glpat-C0nv3rg3T0k3n"
GITHUB_TOKEN = "ghp_C0nv3rg3T0k3nNeverShown01"
PROJECT = "xen-project/xsa-manifests"
BRANCH = "xsabot/4.19/xsa-2"
PATH = "manifests/4.19.yaml"


@pytest.fixture
def repo_bot(bot: Bot, tmp_path: Path) -> tuple[Bot, RepoBuilder]:
    """The bot with its manifests in a git repository, as the embedded default has them."""
    repo = RepoBuilder(tmp_path / "manifests-repo")
    bot.manifests = repo.path / "manifests"
    return bot, repo


def reconcile(bot: Bot, *, state: Path | None = None) -> dict:
    run = bot("reconcile", "--json", state=state)
    data = json.loads(run.out)
    data["status"] = run.status
    return data


def done(data: dict) -> list[tuple[str, str]]:
    return [(p["action"], p["branch"]) for p in data["proposals"] if p["error"] is None]


def records(bot: Bot) -> list[dict]:
    """The proposals part of every build record in the mirror (notes), by branch."""
    found = []
    for line in git_text(["notes", "--ref=xsabot", "list"], cwd=bot.mirror).splitlines():
        note = git_text(["cat-file", "blob", line.split()[0]], cwd=bot.mirror)
        for branch, record in sorted(note_records(note).records.items()):
            found.append({"branch": branch, "proposals": record.proposals})
    return found


def local_records(state: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((state / "proposals").glob("*.json"))]


def two_xsas(xenlike: XenLike) -> str:
    return manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]))


# -- the local forge ----------------------------------------------------------------------------


def test_the_proposal_step_failing_is_completed_by_the_next_pass_with_nothing_rebuilt(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    repo.commit("add\n", {PATH: two_xsas(xenlike)})
    git_dir = repo.path / ".git"
    git_dir.rename(repo.path / "git-away")  # the manifests repository cannot be reached
    first = reconcile(bot)
    (repo.path / "git-away").rename(git_dir)
    assert first["branches"][0]["published"] is True  # the branch goes out regardless
    assert first["proposals"] == [] and "proposals: " in first["errors"][0]
    assert [r["proposals"] for r in records(bot)] == [None]  # nothing worked out yet

    second = reconcile(bot)
    assert second["branches"][0]["rebuilt"] is False
    assert done(second) == [("open", BRANCH)]
    assert f"commit: {xenlike.shas['prereq']}" in repo.repo.git.show(f"{BRANCH}:{PATH}")
    [recorded] = records(bot)
    assert recorded["proposals"] is not None and list(recorded["proposals"].wanted) == [BRANCH]

    tip_before = repo.rev(BRANCH)
    third = reconcile(bot)  # settled: nothing rebuilt, nothing searched, nothing done
    assert third["proposals"] == [] and third["errors"] == [] and third["status"] == 1
    assert repo.rev(BRANCH) == tip_before


def test_a_lost_state_dir_reopens_on_the_bots_own_branch(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    repo.commit("add\n", {PATH: two_xsas(xenlike)})
    assert done(reconcile(bot)) == [("open", BRANCH)]
    branch_tip = repo.rev(BRANCH)
    shutil.rmtree(bot.state)

    again = reconcile(bot)
    assert again["errors"] == [] and done(again) == [("open", BRANCH)]
    assert repo.rev(BRANCH) == branch_tip  # the same proposal is the same commit
    assert [r["state"] for r in local_records(bot.state)] == ["open"]


def test_a_second_replica_with_its_own_state_dir_is_not_blocked(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    repo.commit("add\n", {PATH: two_xsas(xenlike)})
    assert done(reconcile(bot)) == [("open", BRANCH)]
    branch_tip = repo.rev(BRANCH)

    other = reconcile(bot, state=tmp_path / "replica-state")
    assert other["errors"] == [] and done(other) == [("open", BRANCH)]
    assert other["branches"][0]["rebuilt"] is False  # the record in the mirror says it all
    assert repo.rev(BRANCH) == branch_tip
    assert reconcile(bot)["proposals"] == []  # the first replica's view is still settled


def test_a_crash_between_moving_the_branch_and_writing_the_record_does_not_block_it(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    repo.commit("add\n", {PATH: two_xsas(xenlike)})
    reconcile(bot)
    [record_file] = (bot.state / "proposals").glob("*.json")
    before = record_file.read_text()
    # A comment changes the proposed file, so the proposal is updated: the branch moves.
    repo.commit("comment\n", {PATH: "# the 4.19 line\n" + two_xsas(xenlike)})
    assert done(reconcile(bot)) == [("update", BRANCH)]
    moved = repo.rev(BRANCH)
    record_file.write_text(before)  # as if killed after the move, before the record

    after = reconcile(bot)
    assert after["errors"] == [] and done(after) == [("update", BRANCH)]
    assert repo.rev(BRANCH) == moved
    assert json.loads(record_file.read_text())["head"] == moved
    assert repo.repo.git.show(f"{BRANCH}:{PATH}").startswith("# the 4.19 line\n")


def test_a_maintainers_own_branch_under_the_bots_prefix_is_never_touched(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    repo.commit("add\n", {PATH: two_xsas(xenlike)})
    repo.branch(BRANCH)
    repo.checkout(BRANCH)
    # Even a commit that copies the bot's identity and trailer, but not on the default branch.
    mine = repo.commit(
        f"my own work\n\nXsabot-Proposal: {BRANCH} 0123456789abcdef\n", {"NOTES": "mine\n"}
    )
    repo.checkout("master")

    for _ in range(2):
        data = reconcile(bot)
        [proposal] = data["proposals"]
        assert proposal["action"] == "open" and "the bot did not make" in proposal["error"]
        assert repo.rev(BRANCH) == mine
    assert local_records(bot.state) == []


def test_a_moot_proposal_left_open_by_a_failed_pass_is_closed_by_the_next(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    repo.commit("add\n", {PATH: two_xsas(xenlike)})
    assert done(reconcile(bot)) == [("open", BRANCH)]
    repo.commit("drop XSA-2\n", {PATH: manifest(xenlike, (1, ["xsa1"]))})
    git_dir = repo.path / ".git"
    git_dir.rename(repo.path / "git-away")
    try:
        failed = reconcile(bot)
    finally:
        (repo.path / "git-away").rename(git_dir)
    assert failed["branches"][0]["rebuilt"] is True and failed["proposals"] == []
    assert [r["state"] for r in local_records(bot.state)] == ["open"]  # stale

    data = reconcile(bot)
    assert data["branches"][0]["rebuilt"] is False
    assert [(p["action"], p["state"]) for p in data["proposals"]] == [("close", "closed")]
    assert reconcile(bot)["proposals"] == []


# -- GitLab and GitHub ---------------------------------------------------------------------------


class ForgeSetup:
    """A forge server with the manifests project, its bare repository, and a volunteer's
    checkout of it that the bot reads its manifests from."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.checkout = RepoBuilder(tmp_path / "checkout")
        self.remote = tmp_path / "remote.git"
        self.cache = tmp_path / "forge-cache.git"
        self.server: FakeGitLab | FakeGitHub
        if kind == "gitlab":
            self.server = FakeGitLab(GITLAB_TOKEN)
        else:
            self.server = FakeGitHub(GITHUB_TOKEN, prefix="/api/v3")
        self.server.start()

    def seed(self, text: str) -> None:
        self.checkout.commit("add\n", {PATH: text})
        self.checkout.repo.git.branch("-M", "main")
        run_git("clone", "--quiet", "--bare", str(self.checkout.path), str(self.remote))
        if isinstance(self.server, FakeGitLab):
            self.server.add_project(PROJECT)
        else:
            self.server.add_repo(PROJECT, git_dir=self.remote)

    def forge(self, config: Config) -> Forge:
        policy = RetryPolicy(attempts=2, backoff=0.0, max_wait=1.0, sleep=lambda s: None)
        identity = Identity()
        if isinstance(self.server, FakeGitLab):
            forge_config = ForgeConfig(
                kind="gitlab", url=self.server.url, project=PROJECT, git_url=str(self.remote)
            )
            return GitLabForge(
                forge_config,
                token=GITLAB_TOKEN,
                cache=self.cache,
                identity=identity,
                policy=policy,
            )
        forge_config = ForgeConfig(
            kind="github", url=self.server.origin, project=PROJECT, git_url=str(self.remote)
        )
        return GitHubForge(
            forge_config, token=GITHUB_TOKEN, cache=self.cache, identity=identity, policy=policy
        )

    @property
    def mr_path(self) -> str:
        return "/merge_requests$" if self.kind == "gitlab" else "/pulls$"

    def open_mrs(self) -> list[dict]:
        if isinstance(self.server, FakeGitLab):
            mrs = self.server.project(PROJECT).mrs
            return [m for m in mrs if m["state"] == "opened"]
        return [p for p in self.server.repo(PROJECT).pulls if p["state"] == "open"]


@pytest.fixture(params=["gitlab", "github"])
def forge_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ForgeSetup]:
    setup = ForgeSetup(request.param, tmp_path)
    yield setup
    setup.server.stop()
    assert not setup.server.unknown, setup.server.unknown
    assert not setup.server.errors, setup.server.errors[0]


@pytest.fixture
def forge_bot(bot: Bot, forge_setup: ForgeSetup) -> Bot:
    bot.manifests = forge_setup.checkout.path / "manifests"
    bot.adapters = Adapters(forge=forge_setup.forge)
    return bot


@pytest.mark.parametrize("status", [500, 401])
def test_a_forge_failing_once_gets_its_merge_request_opened_by_the_next_pass(
    forge_bot: Bot, forge_setup: ForgeSetup, xenlike: XenLike, status: int
) -> None:
    forge_setup.seed(two_xsas(xenlike))
    forge_setup.server.fail("POST", forge_setup.mr_path, status, times=3)  # beyond the retries
    first = reconcile(forge_bot)
    [failed] = first["proposals"]
    assert failed["action"] == "open" and str(status) in failed["error"]
    assert forge_setup.open_mrs() == []
    forge_setup.server.clear_faults()

    second = reconcile(forge_bot)  # the forge is back; nothing changed in the manifests
    assert second["branches"][0]["rebuilt"] is False
    assert done(second) == [("open", BRANCH)] and second["errors"] == []
    [mr] = forge_setup.open_mrs()
    assert mr["title"] == "4.19: add 1 prerequisite for XSA-2"
    assert tip(forge_setup.remote, BRANCH) is not None

    forge_setup.server.requests.clear()
    third = reconcile(forge_bot)  # settled: one listing, nothing written
    assert third["proposals"] == [] and third["errors"] == []
    assert len(forge_setup.server.calls("GET", forge_setup.mr_path)) == 1
    assert forge_setup.server.writes() == []


def test_a_forge_unreachable_for_a_whole_pass_leaves_nothing_behind(
    forge_bot: Bot, forge_setup: ForgeSetup, xenlike: XenLike
) -> None:
    forge_setup.seed(two_xsas(xenlike))
    forge_setup.server.fail("GET", forge_setup.mr_path, 500, times=3)  # the listing fails
    first = reconcile(forge_bot)
    assert first["proposals"] == [] and "proposals: " in first["errors"][0]
    assert done(reconcile(forge_bot)) == [("open", BRANCH)]
    assert len(forge_setup.open_mrs()) == 1


def test_a_maintainers_merge_request_from_the_bots_prefix_is_not_the_bots(
    forge_bot: Bot, forge_setup: ForgeSetup, xenlike: XenLike
) -> None:
    forge_setup.seed(two_xsas(xenlike))
    theirs = "xsabot/4.19/xsa-9"  # XSA-9 is in no manifest: were it the bot's, it would close
    run_git("branch", theirs, "main", cwd=forge_setup.remote)
    server = forge_setup.server
    if isinstance(server, FakeGitLab):
        pid = server.project(PROJECT).id
        url = f"{server.url}/api/v4/projects/{pid}/merge_requests"
        body = {
            "source_branch": theirs,
            "target_branch": "main",
            "title": "mine",
            "description": "x",
        }
        headers = {"PRIVATE-TOKEN": GITLAB_TOKEN}
    else:
        url = f"{server.url}/repos/{PROJECT}/pulls"
        body = {"head": theirs, "base": "main", "title": "mine", "body": "x"}
        headers = {"Authorization": f"token {GITHUB_TOKEN}"}
    assert requests.post(url, json=body, headers=headers, timeout=10).status_code == 201

    data = reconcile(forge_bot)
    assert done(data) == [("open", BRANCH)]  # the maintainer's is neither listed nor closed
    assert sorted(mr["title"] for mr in forge_setup.open_mrs()) == [
        "4.19: add 1 prerequisite for XSA-2",
        "mine",
    ]
    assert reconcile(forge_bot)["proposals"] == []


def test_a_merge_request_closed_by_a_volunteer_is_settled_not_reopened(
    forge_bot: Bot, forge_setup: ForgeSetup, xenlike: XenLike
) -> None:
    forge_setup.seed(two_xsas(xenlike))
    assert done(reconcile(forge_bot)) == [("open", BRANCH)]
    server = forge_setup.server
    if isinstance(server, FakeGitLab):
        server.project(PROJECT).mrs[0]["state"] = "closed"
    else:
        server.repo(PROJECT).pulls[0]["state"] = "closed"
    server.requests.clear()
    data = reconcile(forge_bot)  # the same content, closed: a volunteer's answer
    assert data["proposals"] == [] and data["errors"] == []
    assert server.writes() == [] and forge_setup.open_mrs() == []


# -- linear proposals ----------------------------------------------------------------------------


def _each_edit(text: str) -> list[str]:
    numbers = [int(n) for n in re.findall(r"^  - xsa: (\d+)$", text, re.M)]
    out = []
    for n in numbers:
        out.append(edit.add_prerequisites(text, n, [("a" * 40, "x86: a: b"), ("b" * 40, "q")]))
        out.append(edit.mark_blocked(text, n, "xsabot found no prerequisite set: conflicts"))
    return out


def _shipped_and_test_manifests() -> list[str]:
    root = Path(__file__).resolve().parent.parent
    texts = [p.read_text() for p in sorted((root / "manifests").glob("*.yaml"))]
    return [*texts, EDIT_MANIFEST]


EDIT_MANIFEST = """\
# Maintained by the 4.19 volunteers.
tree: xen
base: RELEASE-4.19.3   # the tag downstreams run
source: stable-4.19
branch: xsa/4.19.3
xsas:                      # applied in this order
  - xsa: 467
    commits: [{f1}]    # one fix

  # 470 needed two attempts upstream
  - xsa: 470
    prerequisites:
      - {{commit: {c}, why: "in flow style"}}
    commits:
      - {f2}  # x86/amd: Mitigate the thing
      - {f3}  # x86/amd: Mitigate it harder
  - xsa: 472
    status: blocked        # waiting for a backport
    why: 'needs a manual backport'
# trailing words
""".format(f1="f1" * 20, f2="f2" * 20, f3="f3" * 20, c="c" * 40)


def test_each_edit_of_one_entry_is_what_editing_the_whole_document_gives() -> None:
    for text in _shipped_and_test_manifests():
        batched = _each_edit(text)
        layout, edit._layout = edit._layout, lambda text: None  # type: ignore[assignment]
        try:
            whole = _each_edit(text)
        finally:
            edit._layout = layout  # type: ignore[assignment]
        assert batched == whole
        assert len(set(batched)) == len(batched)  # each edit changed something of its own


def test_a_manifest_is_parsed_once_for_all_its_proposals() -> None:
    entries = "".join(
        f"  - xsa: {n}\n    commits:\n      - {n:040x}  # fix {n}\n" for n in range(1, 201)
    )
    text = "tree: xen\nbase: R\nsource: s\nbranch: xsa/x\nxsas:\n" + entries
    edit._layout.cache_clear()
    for n in range(1, 201):
        edited = edit.mark_blocked(text, n, "no set")
        assert f'  - xsa: {n}\n    status: blocked\n    why: "no set"\n' in edited
    info = edit._layout.cache_info()
    assert (info.misses, info.hits) == (1, 199)


def test_a_manifest_not_in_plain_block_style_is_still_edited_whole() -> None:
    text = (
        f"tree: xen\nbase: R\nsource: s\nbranch: xsa/x\nxsas: [{{xsa: 1, commits: [{'a' * 40}]}}]\n"
    )
    assert edit._layout(text) is None
    edited = edit.mark_blocked(text, 1, "no set")
    assert "status: blocked" in edited and 'why: "no set"' in edited
    with pytest.raises(edit.ManifestEditError, match="XSA-2 is not in the manifest"):
        edit.mark_blocked(text, 2, "no set")
