"""The GitLab forge against a fake GitLab over real HTTP, driven by the real python-gitlab."""

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
from bot.forges.gitlab import GitLabForge
from bot.forges.http import RetryPolicy
from bot.forges.plan_comment import key_of, post_plan
from bot.git.proposal_branch import branch_tip
from bot.git.runner import git
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.repos import (
    MANIFEST,
    bare_manifests_repo,
    fork_of,
    push_as_human,
    show,
    tip,
)
from tests.forge_contract import *  # noqa: F403  (the contract runs against this forge too)
from tests.forge_contract import seed_manifests
from tests.gitrepo import RepoBuilder, scrub_git_env

TOKEN = "glpat-Xs4b0tT0k3nNeverShown"
PROJECT = "xen-project/xsa-manifests"
FORK = "xsabot/xsa-manifests"
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
def fake() -> Iterator[FakeGitLab]:
    # Under /gitlab: a self-hosted instance with a relative URL root, the harder case.
    server = FakeGitLab(TOKEN, prefix="/gitlab")
    server.start()
    yield server
    server.stop()
    assert not server.unknown, f"requests the fake does not know: {server.unknown}"
    assert not server.errors, server.errors[0]


@pytest.fixture
def remote(tmp_path: Path, fake: FakeGitLab) -> Path:
    fake.add_project(PROJECT)
    return bare_manifests_repo(tmp_path)


def make_forge(
    fake: FakeGitLab,
    tmp_path: Path,
    remote: Path,
    *,
    sleeps: Sleeps | None = None,
    per_page: int = 100,
    **config: str,
) -> GitLabForge:
    forge_config = ForgeConfig(
        kind="gitlab", url=fake.url, project=PROJECT, git_url=str(remote), **config
    )
    policy = RetryPolicy(backoff=0.01, max_wait=5.0, sleep=sleeps or Sleeps())
    return GitLabForge(
        forge_config,
        token=TOKEN,
        cache=tmp_path / "state" / "forges" / "gitlab.git",
        identity=BOT,
        policy=policy,
        per_page=per_page,
    )


@pytest.fixture
def forge(fake: FakeGitLab, tmp_path: Path, remote: Path) -> GitLabForge:
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
class GitLabWorld:
    """The contract's view: the volunteer's checkout doubles as the project's repository."""

    forge: GitLabForge
    manifests: RepoBuilder
    fake: FakeGitLab

    def merge(self, mr: MergeRequest) -> None:
        self.manifests.repo.git.merge("--no-ff", "--no-edit", mr.branch)
        self.fake.mr(PROJECT, mr.id)["state"] = "merged"

    def tip(self, branch: str) -> str | None:
        return branch_tip(self.manifests.path, branch)

    def file_on_branch(self, branch: str, path: str) -> str:
        return git(["show", f"{branch}:{path}"], cwd=self.manifests.path).stdout.decode()

    def comments(self, mr_id: int) -> list[str]:
        notes = sorted(self.fake.mr_notes(PROJECT, mr_id), key=lambda n: n["id"])
        return [n["body"].split("\n", 1)[1] if key_of(n["body"]) else n["body"] for n in notes]

    def snapshot(self) -> object:
        refs = git(["for-each-ref", "--format=%(refname) %(objectname)"], cwd=self.manifests.path)
        held = [self.fake.project(PROJECT).mrs, list(self.fake.notes.items()), self.fake.statuses]
        return refs.stdout, json.dumps(held, sort_keys=True, default=str)


@pytest.fixture
def forge_world(fake: FakeGitLab, tmp_path: Path) -> GitLabWorld:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    seed_manifests(repo)
    fake.add_project(PROJECT, default_branch="master")
    return GitLabWorld(make_forge(fake, tmp_path, repo.path), repo, fake)


# --- merge requests ---------------------------------------------------------------------------


def test_open_pushes_the_branch_and_opens_a_merge_request(
    forge: GitLabForge, fake: FakeGitLab, remote: Path
) -> None:
    p = proposal()
    mr = forge.open(p)

    assert (mr.id, mr.branch, mr.state, mr.draft) == (1, p.branch, "open", False)
    assert mr.title == p.title and mr.content_hash == p.content_hash()
    assert mr.url.endswith(f"/gitlab/{PROJECT}/-/merge_requests/1")
    assert show(remote, p.branch, MANIFEST) == "xsas: [470]\n"
    committer = show(remote, p.branch, "README")  # the rest of the tree is the base's
    assert committer == "manifests\n"
    stored = fake.mr(PROJECT, 1)
    assert stored["target_branch"] == "main" and stored["description"] == p.body_with_marker()
    assert forge.find(p.branch) == mr


def test_draft_proposal_opens_a_draft_and_update_can_undraft_it(forge: GitLabForge) -> None:
    draft = Proposal(
        branch="xsabot/4.19/xsa-471",
        title="xen-4.19: XSA-471 blocked",
        body="b",
        draft=True,
        files={MANIFEST: "xsas: [471]\n"},
    )
    mr = forge.open(draft)
    assert mr.draft and mr.title == draft.title

    ready = Proposal(draft.branch, draft.title, draft.body, draft.files, draft=False)
    assert not forge.update(mr, ready).draft


def test_update_changes_nothing_when_the_content_is_the_same(
    forge: GitLabForge, fake: FakeGitLab, remote: Path
) -> None:
    p = proposal()
    mr = forge.open(p)
    before = tip(remote, p.branch)

    assert forge.update(mr, p) == mr
    assert tip(remote, p.branch) == before
    assert not fake.calls("PUT")


def test_update_edits_and_pushes_only_what_changed(
    forge: GitLabForge, fake: FakeGitLab, remote: Path
) -> None:
    mr = forge.open(proposal())
    first_tip = tip(remote, mr.branch)

    reworded = proposal(body="Adds XSA-470, with evidence.")
    mr2 = forge.update(mr, reworded)
    assert tip(remote, mr.branch) == first_tip  # same files: the branch is left alone
    assert mr2.content_hash == reworded.content_hash()
    assert fake.mr(PROJECT, 1)["description"] == reworded.body_with_marker()

    changed = proposal(body="Adds XSA-470, with evidence.", text="xsas: [470, 471]\n")
    forge.update(mr2, changed)
    assert show(remote, mr.branch, MANIFEST) == "xsas: [470, 471]\n"
    assert len(fake.calls("PUT", "/merge_requests/1$")) == 2


def test_close_comments_then_closes(forge: GitLabForge, fake: FakeGitLab) -> None:
    mr = forge.open(proposal())
    forge.close(mr, "XSA-470 is in the base now.")

    assert fake.mr(PROJECT, 1)["state"] == "closed"
    assert forge.find(mr.branch).state == "closed"  # type: ignore[union-attr]
    (note,) = fake.mr_notes(PROJECT, 1)
    assert note["body"].endswith("XSA-470 is in the base now.")


def test_a_second_open_returns_the_existing_merge_request(
    forge: GitLabForge, fake: FakeGitLab
) -> None:
    first = forge.open(proposal())
    assert forge.open(proposal()) == first
    # Another replica opens it between our look and our create: GitLab answers 409.
    fake.fail("GET", "/merge_requests$", 200, body=[])
    assert forge.open(proposal()) == first

    assert len(fake.project(PROJECT).mrs) == 1
    assert len(fake.calls("POST", "/merge_requests$")) == 2  # the second one got the 409


def test_find_and_list_open_follow_pagination_and_skip_others_mrs(
    fake: FakeGitLab, tmp_path: Path, remote: Path
) -> None:
    forge = make_forge(fake, tmp_path, remote, per_page=2)
    opened = [forge.open(proposal(xsa)) for xsa in (470, 471, 472, 473, 474)]
    forge.close(opened[0], "not needed")
    # A volunteer's fork with a branch of the same name, and a human branch: not the bot's.
    fake.add_project("volunteer/xsa-manifests", forked_from=PROJECT)
    project = fake.project(PROJECT)
    theirs = dict(
        project.mrs[1], iid=99, source_project_id=fake.project("volunteer/xsa-manifests").id
    )
    human = dict(project.mrs[2], iid=100, source_branch="fix-typo")
    project.mrs += [theirs, human]

    assert sorted(mr.id for mr in forge.list_open()) == [2, 3, 4, 5]
    assert forge.find(opened[1].branch).id == 2  # type: ignore[union-attr]
    assert forge.find("xsabot/4.19/xsa-999") is None
    assert any(r.query.get("page") == "2" for r in fake.calls("GET", "/merge_requests$"))


def test_fork_pushes_to_the_fork_and_opens_into_the_project(
    fake: FakeGitLab, tmp_path: Path, remote: Path
) -> None:
    fake.add_project(FORK, forked_from=PROJECT)
    fork = fork_of(remote, tmp_path)
    forge = make_forge(fake, tmp_path, remote, fork_project=FORK, fork_git_url=str(fork))

    p = proposal()
    mr = forge.open(p)

    assert tip(fork, p.branch) is not None and tip(remote, p.branch) is None
    stored = fake.mr(PROJECT, mr.id)
    assert stored["source_project_id"] == fake.project(FORK).id
    assert stored["target_project_id"] == fake.project(PROJECT).id
    assert forge.find(p.branch) == mr and forge.list_open() == [mr]
    assert forge.open(p) == mr  # the 409 from the fork is resolved the same way


def test_someone_elses_commit_on_the_bot_branch_is_not_overwritten(
    forge: GitLabForge, remote: Path, tmp_path: Path
) -> None:
    mr = forge.open(proposal())
    theirs = push_as_human(remote, mr.branch, tmp_path)

    with pytest.raises(ForgeConflict, match="not by the bot"):
        forge.update(mr, proposal(text="xsas: [470, 471]\n"))
    assert tip(remote, mr.branch) == theirs


# --- retries and errors -----------------------------------------------------------------------


def test_rate_limit_is_waited_out(fake: FakeGitLab, tmp_path: Path, remote: Path) -> None:
    sleeps = Sleeps(real=True)
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    fake.fail("GET", r"/projects/[^/]+$", 429, headers={"Retry-After": "1"}, body="Retry later\n")

    started = time.monotonic()
    assert forge.default_branch() == "main"
    elapsed = time.monotonic() - started

    assert sleeps.waits == [1.0]
    assert 1.0 <= elapsed < 4.0
    assert len(fake.calls("GET", r"/projects/[^/]+$")) == 2


def test_rate_limit_reset_header_is_honoured_without_retry_after(
    fake: FakeGitLab, tmp_path: Path, remote: Path
) -> None:
    sleeps = Sleeps()
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    reset = str(int(time.time()) + 3)
    fake.fail(
        "GET", r"/projects/", 429, headers={"RateLimit-Remaining": "0", "RateLimit-Reset": reset}
    )

    forge.default_branch()
    assert len(sleeps.waits) == 1 and 1.0 <= sleeps.waits[0] <= 3.0


def test_rate_limit_longer_than_the_bound_gives_up_without_waiting(
    fake: FakeGitLab, tmp_path: Path, remote: Path
) -> None:
    sleeps = Sleeps()
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    fake.fail("GET", r"/projects/", 429, headers={"Retry-After": "3600"}, body="Retry later\n")

    with pytest.raises(ForgeRateLimited, match="3600s"):
        forge.default_branch()
    assert sleeps.waits == []


def test_server_errors_are_retried_a_bounded_number_of_times(
    fake: FakeGitLab, tmp_path: Path, remote: Path
) -> None:
    sleeps = Sleeps()
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    fake.fail("GET", r"/projects/", 500, times=100)

    with pytest.raises(ForgeTransient, match="after 4 attempts"):
        forge.default_branch()
    assert len(fake.calls("GET")) == 4
    assert sleeps.waits == [0.01, 0.02, 0.04]


def test_a_passing_server_error_is_invisible(
    fake: FakeGitLab, tmp_path: Path, remote: Path
) -> None:
    forge = make_forge(fake, tmp_path, remote)
    fake.fail("POST", r"/merge_requests$", 502, times=2)

    mr = forge.open(proposal())
    assert mr.id == 1 and len(fake.project(PROJECT).mrs) == 1


def test_forbidden_stops_at_once_with_a_clear_error(
    fake: FakeGitLab, tmp_path: Path, remote: Path
) -> None:
    sleeps = Sleeps()
    forge = make_forge(fake, tmp_path, remote, sleeps=sleeps)
    fake.fail("POST", r"/merge_requests$", 403)

    with pytest.raises(ForgePermission) as caught:
        forge.open(proposal())
    message = str(caught.value)
    assert "permission denied (403" in message and PROJECT in message
    assert "open a merge request from xsabot/4.19/xsa-470" in message
    assert len(fake.calls("POST")) == 1 and sleeps.waits == []
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_wrong_token_is_a_permission_error(
    fake: FakeGitLab, tmp_path: Path, remote: Path
) -> None:
    fake.token = "another-token"
    with pytest.raises(ForgePermission, match="rejected the token"):
        make_forge(fake, tmp_path, remote).default_branch()


def test_an_unknown_merge_request_is_not_found(forge: GitLabForge) -> None:
    with pytest.raises(ForgeNotFound):
        forge.comment(42, "plan", "text")


# --- comments and the plan ---------------------------------------------------------------------


def test_plan_comment_is_edited_in_place(forge: GitLabForge, fake: FakeGitLab) -> None:
    mr = forge.open(proposal())
    fake.add_note(PROJECT, mr.id, "> <!-- xsabot:comment=plan -->\n> quoting the bot")
    post_plan(forge, mr.id, "plan v1")
    post_plan(forge, mr.id, "plan v2")
    post_plan(forge, mr.id, "plan v2")  # unchanged: no request that writes

    notes = fake.mr_notes(PROJECT, mr.id)
    ours = [n for n in notes if key_of(n["body"]) == "plan"]
    assert len(notes) == 2 and len(ours) == 1
    assert ours[0]["body"].endswith("plan v2")
    assert len(fake.calls("POST", "/notes$")) == 1 and len(fake.calls("PUT", "/notes/")) == 1


def test_plan_is_split_at_the_limit_and_stale_parts_go(
    fake: FakeGitLab, tmp_path: Path, remote: Path
) -> None:
    fake.note_limit = 400
    forge = make_forge(fake, tmp_path, remote)
    mr = forge.open(proposal())
    plan = "".join(f"manifest xen-4.{i}.yaml: add XSA-{400 + i}\n" for i in range(40))

    keys = post_plan(forge, mr.id, plan, limit=400)
    notes = fake.mr_notes(PROJECT, mr.id)
    assert len(keys) > 3 and sorted(key_of(n["body"]) for n in notes) == sorted(keys)
    assert all(len(n["body"]) <= 400 for n in notes)
    assert "".join(plan.splitlines(keepends=True)[:3]) in notes[0]["body"]

    assert post_plan(forge, mr.id, "nothing to do", limit=400) == ["plan"]
    (only,) = fake.mr_notes(PROJECT, mr.id)
    assert only["body"].endswith("nothing to do")


def test_commit_status_is_set_once_and_read_combined(forge: GitLabForge, fake: FakeGitLab) -> None:
    sha = "a" * 40
    assert forge.check_status(sha) == "unknown"
    forge.set_status(sha, "pending", "xsabot/plan", "planning")
    forge.set_status(sha, "pending", "xsabot/plan", "planning")  # GitLab would 400 this
    assert len(fake.calls("POST", "/statuses/")) == 1
    assert forge.check_status(sha) == "pending"

    forge.set_status(sha, "success", "xsabot/plan", "planned", url="https://ci.example/1")
    fake.add_status(PROJECT, sha, "build", "success")
    assert forge.check_status(sha) == "success"
    fake.add_status(PROJECT, sha, "lint", "failed", allow_failure=True)
    assert forge.check_status(sha) == "success"
    fake.add_status(PROJECT, sha, "test", "failed")
    assert forge.check_status(sha) == "failure"


# --- the token ---------------------------------------------------------------------------------


def test_the_token_never_leaks(
    fake: FakeGitLab,
    tmp_path: Path,
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("XSABOT_GITLAB_TOKEN", TOKEN)
    config = Config(
        state=tmp_path / "state",
        forge=ForgeConfig(
            kind="gitlab",
            url=fake.url,
            project=PROJECT,
            git_url=str(remote),
            token_env="XSABOT_GITLAB_TOKEN",
        ),
    )
    forge = GitLabForge.from_config(config, policy=RetryPolicy(backoff=0.01))
    errors: list[str] = []
    mr = forge.open(proposal())
    forge.comment(mr.id, "plan", "a plan")
    for status in (403, 500, 404, 409, 401):
        fake.fail("PUT", "/merge_requests/", status, times=10)
        try:
            forge.update(mr, proposal(body=f"try {status}"))
        except Exception as exc:
            errors.append(f"{exc!r} {exc}")
        fake.clear_faults()

    assert len(errors) == 5
    texts = errors + [r.getMessage() for r in caplog.records]
    texts += [str(m) for m in fake.project(PROJECT).mrs]
    texts += [n["body"] for n in fake.mr_notes(PROJECT, mr.id)]
    for request in fake.requests:
        texts += [request.path, str(request.query), request.body.decode()]
    texts += [p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert fake.requests[0].headers["private-token"] == TOKEN  # it was really used
    leaks = [t for t in texts if TOKEN in t]
    assert not leaks, leaks[:3]


def test_load_forge_makes_the_gitlab_forge(
    fake: FakeGitLab, tmp_path: Path, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.forges.registry import load_forge

    monkeypatch.setenv("XSABOT_GITLAB_TOKEN", TOKEN)
    forge = ForgeConfig(
        kind="gitlab",
        url=fake.url,
        project=PROJECT,
        git_url=str(remote),
        token_env="XSABOT_GITLAB_TOKEN",
    )
    made = load_forge(Config(state=tmp_path / "state", forge=forge))
    assert isinstance(made, GitLabForge) and made.default_branch() == "main"
