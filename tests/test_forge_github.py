"""The GitHub forge against a fake GitHub over real HTTP, driven by the real PyGithub."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import Config, ForgeConfig, Identity
from bot.core.ports import MergeRequest, Proposal
from bot.errors import (
    ForgeConflict,
    ForgeNotFound,
    ForgePermission,
    ForgeRateLimited,
    ForgeTransient,
)
from bot.forges.github import GitHubForge
from bot.forges.http import RetryPolicy
from bot.forges.plan_comment import key_of, post_plan
from bot.git.proposal_branch import branch_tip
from bot.git.runner import git
from tests.fakes.github import FakeGitHub
from tests.fakes.repos import MANIFEST, bare_manifests_repo, fork_of, push_as_human, show, tip
from tests.forge_contract import *  # noqa: F403  (the contract runs against this forge too)
from tests.forge_contract import seed_manifests
from tests.gitrepo import RepoBuilder, scrub_git_env

TOKEN = "ghp_Xs4b0tT0k3nNeverShown0123"
REPO = "xen-project/xsa-manifests"
FORK = "xsabot-bot/xsa-manifests"
BOT = Identity(name="xsabot", email="xsabot@xenproject.invalid")


class Sleeps:
    """An injectable sleep that records each wait (and really waits only if told to)."""

    def __init__(self, real: bool = False) -> None:
        self.waits: list[float] = []
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.real:
            time.sleep(seconds)


@pytest.fixture(autouse=True)
def _clean_git_env() -> None:
    scrub_git_env()


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    # Under /api/v3: a GitHub Enterprise server, whose API URL the config derives from `url`.
    server = FakeGitHub(TOKEN, prefix="/api/v3")
    server.start()
    yield server
    server.stop()
    assert not server.unknown, f"requests the fake does not know: {server.unknown}"
    assert not server.errors, server.errors[0]


@pytest.fixture
def remote(tmp_path: Path, fake: FakeGitHub) -> Path:
    bare = bare_manifests_repo(tmp_path)
    fake.add_repo(REPO, git_dir=bare)
    return bare


def make_forge(
    fake: FakeGitHub,
    tmp_path: Path,
    remote: Path,
    *,
    sleeps: Sleeps | None = None,
    per_page: int = 100,
    **config: str,
) -> GitHubForge:
    forge_config = ForgeConfig(
        kind="github", url=fake.origin, project=REPO, git_url=str(remote), **config
    )
    assert forge_config.resolved_api_url() == fake.url
    policy = RetryPolicy(backoff=0.01, max_wait=5.0, sleep=sleeps or Sleeps())
    return GitHubForge(
        forge_config,
        token=TOKEN,
        cache=tmp_path / "state" / "forges" / "github.git",
        identity=BOT,
        policy=policy,
        per_page=per_page,
    )


@pytest.fixture
def forge(fake: FakeGitHub, tmp_path: Path, remote: Path) -> GitHubForge:
    return make_forge(fake, tmp_path, remote)


def proposal(xsa: int = 470, body: str = "Adds XSA-470.", text: str = "xsas: [470]\n") -> Proposal:
    return Proposal(
        branch=f"xsabot/4.19/xsa-{xsa}",
        title=f"xen-4.19: add XSA-{xsa}",
        body=body,
        files={MANIFEST: text},
    )


# --- the forge contract -----------------------------------------------------------------------


@dataclass
class GitHubWorld:
    """The contract's view: the volunteer's checkout doubles as the repository on GitHub."""

    forge: GitHubForge
    manifests: RepoBuilder
    fake: FakeGitHub

    def merge(self, mr: MergeRequest) -> None:
        self.manifests.repo.git.merge("--no-ff", "--no-edit", mr.branch)
        self.fake.merge(REPO, mr.id)

    def tip(self, branch: str) -> str | None:
        return branch_tip(self.manifests.path, branch)

    def file_on_branch(self, branch: str, path: str) -> str:
        return git(["show", f"{branch}:{path}"], cwd=self.manifests.path).stdout.decode()

    def comments(self, mr_id: int) -> list[str]:
        bodies = [c["body"] for c in self.fake.issue_comments(REPO, mr_id)]
        return [b.split("\n", 1)[1] if key_of(b) else b for b in bodies]

    def snapshot(self) -> object:
        refs = git(["for-each-ref", "--format=%(refname) %(objectname)"], cwd=self.manifests.path)
        held = [self.fake.repo(REPO).pulls, self.fake.comments, list(self.fake.statuses.items())]
        return refs.stdout, json.dumps(held, sort_keys=True, default=str)


@pytest.fixture
def forge_world(fake: FakeGitHub, tmp_path: Path) -> GitHubWorld:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    seed_manifests(repo)
    fake.add_repo(REPO, default_branch="master", git_dir=repo.path)
    return GitHubWorld(make_forge(fake, tmp_path, repo.path), repo, fake)


# --- pull requests ----------------------------------------------------------------------------


def test_open_pushes_the_branch_and_opens_a_pull_request(
    forge: GitHubForge, fake: FakeGitHub, remote: Path
) -> None:
    p = proposal()
    mr = forge.open(p)

    assert (mr.id, mr.branch, mr.state, mr.draft) == (1, p.branch, "open", False)
    assert mr.title == p.title and mr.content_hash == p.content_hash()
    assert mr.url == f"{fake.origin}/{REPO}/pull/1"
    assert show(remote, p.branch, MANIFEST) == "xsas: [470]\n"
    assert show(remote, p.branch, "README") == "manifests\n"
    stored = fake.pull(REPO, 1)
    assert stored["base"]["ref"] == "main" and stored["body"] == p.body_with_marker()
    assert stored["head"]["sha"] == tip(remote, p.branch)
    assert forge.find(p.branch) == mr


def test_draft_is_opened_as_draft_and_undrafted_through_graphql(
    forge: GitHubForge, fake: FakeGitHub
) -> None:
    draft = Proposal(
        "xsabot/4.19/xsa-471", "xen-4.19: XSA-471 blocked", "b", {MANIFEST: "x\n"}, True
    )
    mr = forge.open(draft)
    assert mr.draft

    ready = Proposal(draft.branch, draft.title, draft.body, draft.files, draft=False)
    assert not forge.update(mr, ready).draft
    assert fake.pull(REPO, mr.id)["draft"] is False
    assert len(fake.calls("POST", "/api/graphql$")) == 1


def test_update_changes_nothing_when_the_content_is_the_same(
    forge: GitHubForge, fake: FakeGitHub, remote: Path
) -> None:
    p = proposal()
    mr = forge.open(p)
    before = tip(remote, p.branch)

    assert forge.update(mr, p) == mr
    assert tip(remote, p.branch) == before
    assert not fake.calls("PATCH")


def test_update_edits_and_pushes_only_what_changed(
    forge: GitHubForge, fake: FakeGitHub, remote: Path
) -> None:
    mr = forge.open(proposal())
    first_tip = tip(remote, mr.branch)

    reworded = proposal(body="Adds XSA-470, with evidence.")
    mr2 = forge.update(mr, reworded)
    assert tip(remote, mr.branch) == first_tip
    assert mr2.content_hash == reworded.content_hash()
    assert fake.pull(REPO, 1)["body"] == reworded.body_with_marker()

    forge.update(mr2, proposal(body="Adds XSA-470, with evidence.", text="xsas: [470, 471]\n"))
    assert show(remote, mr.branch, MANIFEST) == "xsas: [470, 471]\n"
    assert len(fake.calls("PATCH", "/pulls/1$")) == 2
    assert not fake.calls("POST", "graphql")  # the draft flag did not change


def test_close_comments_then_closes(forge: GitHubForge, fake: FakeGitHub) -> None:
    mr = forge.open(proposal())
    forge.close(mr, "XSA-470 is in the base now.")

    assert fake.pull(REPO, 1)["state"] == "closed"
    assert forge.find(mr.branch).state == "closed"  # type: ignore[union-attr]
    (comment,) = fake.issue_comments(REPO, 1)
    assert comment["body"].endswith("XSA-470 is in the base now.")


def test_a_second_open_returns_the_existing_pull_request(
    forge: GitHubForge, fake: FakeGitHub
) -> None:
    first = forge.open(proposal())
    assert forge.open(proposal()) == first
    # Another replica opens it between our look and our create: GitHub answers 422.
    fake.fail("GET", "/pulls$", 200, body=[])
    assert forge.open(proposal()) == first

    assert len(fake.repo(REPO).pulls) == 1
    assert len(fake.calls("POST", "/pulls$")) == 2  # the second one got the 422


def test_find_and_list_open_follow_pagination_and_skip_others_prs(
    fake: FakeGitHub, tmp_path: Path, remote: Path
) -> None:
    forge = make_forge(fake, tmp_path, remote, per_page=2)
    opened = [forge.open(proposal(xsa)) for xsa in (470, 471, 472, 473, 474)]
    forge.close(opened[0], "not needed")
    volunteer = fake.add_repo("volunteer/xsa-manifests", fork_of=REPO)
    pulls = fake.repo(REPO).pulls
    theirs = json.loads(json.dumps(pulls[1]))
    theirs.update(number=99, id=99)
    theirs["head"]["repo"]["full_name"] = volunteer.full_name
    human = json.loads(json.dumps(pulls[2]))
    human.update(number=100, id=100)
    human["head"]["ref"] = "fix-typo"
    pulls += [theirs, human]

    assert sorted(mr.id for mr in forge.list_open()) == [2, 3, 4, 5]
    assert forge.find(opened[1].branch).id == 2  # type: ignore[union-attr]
    assert forge.find("xsabot/4.19/xsa-999") is None
    assert any(r.query.get("page") == "2" for r in fake.calls("GET", "/pulls$"))


def test_fork_pushes_to_the_fork_and_opens_into_the_repository(
    fake: FakeGitHub, tmp_path: Path, remote: Path
) -> None:
    fork = fork_of(remote, tmp_path)
    fake.add_repo(FORK, fork_of=REPO, git_dir=fork)
    forge = make_forge(fake, tmp_path, remote, fork_project=FORK, fork_git_url=str(fork))

    p = proposal()
    mr = forge.open(p)

    assert tip(fork, p.branch) is not None and tip(remote, p.branch) is None
    stored = fake.pull(REPO, mr.id)
    assert stored["head"]["label"] == f"xsabot-bot:{p.branch}"
    assert stored["head"]["repo"]["full_name"] == FORK
    assert forge.find(p.branch) == mr and forge.list_open() == [mr]
    fake.fail("GET", "/pulls$", 200, body=[])
    assert forge.open(p) == mr  # the 422 for a fork's head is resolved the same way


def test_someone_elses_commit_on_the_bot_branch_is_not_overwritten(
    forge: GitHubForge, remote: Path, tmp_path: Path
) -> None:
    mr = forge.open(proposal())
    theirs = push_as_human(remote, mr.branch, tmp_path)

    with pytest.raises(ForgeConflict, match="not by the bot"):
        forge.update(mr, proposal(text="xsas: [470, 471]\n"))
    assert tip(remote, mr.branch) == theirs


def test_a_head_that_is_not_pushed_is_refused_with_the_reason(
    forge: GitHubForge, fake: FakeGitHub, remote: Path
) -> None:
    fake.repo(REPO).git_dir = remote.parent / "elsewhere.git"  # GitHub cannot see the push
    (remote.parent / "elsewhere.git").mkdir()
    with pytest.raises(ForgeConflict, match=r"422: Validation Failed; PullRequest head invalid"):
        forge.open(proposal())


# --- retries and errors -----------------------------------------------------------------------


def test_rate_limit_is_waited_out(fake: FakeGitHub, tmp_path: Path, remote: Path) -> None:
    sleeps = Sleeps(real=True)
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    fake.fail(
        "GET",
        r"/repos/[^/]+/[^/]+$",
        429,
        headers={"Retry-After": "1"},
        body={"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
    )

    started = time.monotonic()
    assert forge.default_branch() == "main"
    elapsed = time.monotonic() - started

    assert sleeps.waits == [1.0]
    assert 1.0 <= elapsed < 4.0
    assert len(fake.calls("GET", r"/repos/[^/]+/[^/]+$")) == 2


def test_primary_rate_limit_403_waits_for_the_reset(
    fake: FakeGitHub, tmp_path: Path, remote: Path
) -> None:
    sleeps = Sleeps()
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    reset = str(int(time.time()) + 3)
    fake.fail(
        "GET",
        "/pulls$",
        403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
        body={"message": "API rate limit exceeded for user ID 7.", "documentation_url": "x"},
    )

    assert forge.find("xsabot/4.19/xsa-470") is None
    assert len(sleeps.waits) == 1 and 1.0 <= sleeps.waits[0] <= 3.0


def test_rate_limit_longer_than_the_bound_gives_up_without_waiting(
    fake: FakeGitHub, tmp_path: Path, remote: Path
) -> None:
    sleeps = Sleeps()
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    fake.fail("GET", "/repos/", 429, headers={"Retry-After": "3600"})

    with pytest.raises(ForgeRateLimited, match="3600s"):
        forge.default_branch()
    assert sleeps.waits == []


def test_server_errors_are_retried_a_bounded_number_of_times(
    fake: FakeGitHub, tmp_path: Path, remote: Path
) -> None:
    sleeps = Sleeps()
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    fake.fail("GET", "/repos/", 500, times=100)

    with pytest.raises(ForgeTransient, match="after 4 attempts"):
        forge.default_branch()
    assert len(fake.calls("GET")) == 4
    assert sleeps.waits == [0.01, 0.02, 0.04]


def test_a_passing_server_error_is_invisible(
    fake: FakeGitHub, tmp_path: Path, remote: Path
) -> None:
    forge = make_forge(fake, tmp_path, remote)
    fake.fail("POST", "/pulls$", 502, times=2)

    mr = forge.open(proposal())
    assert mr.id == 1 and len(fake.repo(REPO).pulls) == 1


def test_forbidden_stops_at_once_with_a_clear_error(
    fake: FakeGitHub, tmp_path: Path, remote: Path
) -> None:
    sleeps = Sleeps()
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    fake.fail("POST", "/pulls$", 403)

    with pytest.raises(ForgePermission) as caught:
        forge.open(proposal())
    message = str(caught.value)
    assert "permission denied (403: Resource not accessible by personal access token)" in message
    assert f"github {REPO}: open a pull request from xsabot/4.19/xsa-470" in message
    assert len(fake.calls("POST")) == 1 and sleeps.waits == []
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_wrong_token_is_a_permission_error(
    fake: FakeGitHub, tmp_path: Path, remote: Path
) -> None:
    fake.token = "another-token"
    with pytest.raises(ForgePermission, match=r"rejected the token \(401: Bad credentials\)"):
        make_forge(fake, tmp_path, remote).default_branch()


def test_an_unknown_pull_request_is_not_found(forge: GitHubForge) -> None:
    with pytest.raises(ForgeNotFound):
        forge.comment(42, "plan", "text")


def test_github_com_layout_without_a_path_prefix(tmp_path: Path) -> None:
    server = FakeGitHub(TOKEN).start()
    try:
        remote = bare_manifests_repo(tmp_path)
        server.add_repo(REPO, git_dir=remote)
        config = ForgeConfig(kind="github", api_url=server.url, project=REPO, git_url=str(remote))
        forge = GitHubForge(config, token=TOKEN, cache=tmp_path / "c.git", identity=BOT)
        mr = forge.open(Proposal("xsabot/a", "t", "b", {MANIFEST: "x\n"}, draft=True))
        forge.update(mr, Proposal("xsabot/a", "t", "b", {MANIFEST: "x\n"}, draft=False))
        assert server.calls("POST", "^/graphql$") and not server.unknown
    finally:
        server.stop()


# --- comments and the plan ---------------------------------------------------------------------


def test_plan_comment_is_edited_in_place(forge: GitHubForge, fake: FakeGitHub) -> None:
    mr = forge.open(proposal())
    fake.add_comment(REPO, mr.id, "> <!-- xsabot:comment=plan -->\n> quoting the bot")
    post_plan(forge, mr.id, "plan v1")
    post_plan(forge, mr.id, "plan v2")
    post_plan(forge, mr.id, "plan v2")

    comments = fake.issue_comments(REPO, mr.id)
    ours = [c for c in comments if key_of(c["body"]) == "plan"]
    assert len(comments) == 2 and len(ours) == 1
    assert ours[0]["body"].endswith("plan v2")
    assert len(fake.calls("POST", "/comments$")) == 1
    assert len(fake.calls("PATCH", "/comments/")) == 1


def test_plan_is_split_at_the_limit_and_stale_parts_go(
    fake: FakeGitHub, tmp_path: Path, remote: Path
) -> None:
    fake.comment_limit = 400
    forge = make_forge(fake, tmp_path, remote)
    mr = forge.open(proposal())
    plan = "".join(f"manifest xen-4.{i}.yaml: add XSA-{400 + i}\n" for i in range(40))

    keys = post_plan(forge, mr.id, plan, limit=400)
    comments = fake.issue_comments(REPO, mr.id)
    assert len(keys) > 3 and [key_of(c["body"]) for c in comments] == keys
    assert all(len(c["body"]) <= 400 for c in comments)

    assert post_plan(forge, mr.id, "nothing to do", limit=400) == ["plan"]
    (only,) = fake.issue_comments(REPO, mr.id)
    assert only["body"].endswith("nothing to do")


def test_the_default_limit_is_githubs(forge: GitHubForge, fake: FakeGitHub) -> None:
    mr = forge.open(proposal())
    keys = post_plan(forge, mr.id, "x" * 40 + "\n" + "y" * 70_000 + "\n")
    assert len(keys) == 2
    assert all(len(c["body"]) <= 65_536 for c in fake.issue_comments(REPO, mr.id))


def test_statuses_and_check_runs_make_the_check_gate(forge: GitHubForge, fake: FakeGitHub) -> None:
    sha = "b" * 40
    assert forge.check_status(sha) == "unknown"
    forge.set_status(sha, "pending", "xsabot/plan", "planning")
    forge.set_status(sha, "pending", "xsabot/plan", "planning")
    assert len(fake.calls("POST", "/statuses/")) == 1
    assert forge.check_status(sha) == "pending"

    forge.set_status(sha, "success", "xsabot/plan", "x" * 300, url="https://ci.example/1")
    assert forge.check_status(sha) == "success"
    fake.add_check_run(REPO, sha, "build", "in_progress", None)
    assert forge.check_status(sha) == "pending"
    fake.check_runs[(REPO, sha)][0].update(status="completed", conclusion="success")
    assert forge.check_status(sha) == "success"
    fake.add_check_run(REPO, sha, "test", "completed", "failure")
    assert forge.check_status(sha) == "failure"


# --- the token ---------------------------------------------------------------------------------


def test_the_token_never_leaks(
    fake: FakeGitHub,
    tmp_path: Path,
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "secrets" / "github-token"
    token_file.parent.mkdir()
    token_file.write_text(TOKEN + "\n")
    config = Config(
        state=tmp_path / "state",
        forge=ForgeConfig(
            kind="github",
            url=fake.origin,
            project=REPO,
            git_url=str(remote),
            token_file=str(token_file),
        ),
    )
    forge = GitHubForge.from_config(config, policy=RetryPolicy(backoff=0.01))
    errors: list[str] = []
    mr = forge.open(proposal())
    forge.comment(mr.id, "plan", "a plan")
    for status in (403, 500, 404, 422, 401):
        fake.fail("PATCH", "/pulls/", status, times=10)
        try:
            forge.update(mr, proposal(body=f"try {status}"))
        except Exception as exc:
            errors.append(f"{exc!r} {exc}")
        fake.clear_faults()

    assert len(errors) == 5
    texts = errors + [r.getMessage() for r in caplog.records]
    texts += [json.dumps(p) for p in fake.repo(REPO).pulls]
    texts += [c["body"] for c in fake.issue_comments(REPO, mr.id)]
    for request in fake.requests:
        texts += [request.path, str(request.query), request.body.decode()]
    texts += [p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert fake.requests[0].headers["authorization"] == f"token {TOKEN}"  # it was really used
    leaks = [t for t in texts if TOKEN in t]
    assert not leaks, leaks[:3]


def test_load_forge_makes_the_github_forge(
    fake: FakeGitHub, tmp_path: Path, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.forges.registry import load_forge

    monkeypatch.setenv("XSABOT_GITHUB_TOKEN", TOKEN)
    forge = ForgeConfig(
        kind="github",
        url=fake.origin,
        project=REPO,
        git_url=str(remote),
        token_env="XSABOT_GITHUB_TOKEN",
    )
    made = load_forge(Config(state=tmp_path / "state", forge=forge))
    assert isinstance(made, GitHubForge) and made.default_branch() == "main"
