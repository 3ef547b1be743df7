"""The forges' shared pieces: retry policy, credentials, CI variables, plan splitting, config."""

from __future__ import annotations

import json
from email.utils import formatdate
from pathlib import Path

import pytest

from bot.config import ForgeConfig
from bot.errors import (
    ForgeConflict,
    ForgeError,
    ForgeNotFound,
    ForgePermission,
    ForgeRateLimited,
    ForgeTransient,
    SetupError,
)
from bot.forges.ci_env import CiMergeRequest, merge_request_from_ci
from bot.forges.credentials import git_env, read_token
from bot.forges.http import HttpFailure, RetryPolicy, error_for, verdict
from bot.forges.plan_comment import key_of, post_plan, split_text, with_marker
from bot.git.runner import git
from bot.redact import redact

NOW = 1_800_000_000.0


class Boom(Exception):
    """Stands in for a client library's exception."""

    def __init__(self, status: int | None, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.failure = HttpFailure(status, f"said {status}", headers or {})


def classify(exc: BaseException) -> HttpFailure | None:
    return exc.failure if isinstance(exc, Boom) else None


def flaky(*failures: Boom) -> tuple[list[int], object]:
    calls: list[int] = []
    pending = list(failures)

    def operation() -> str:
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return "done"

    return calls, operation


def policy(waits: list[float], **kw: float) -> RetryPolicy:
    return RetryPolicy(backoff=0.5, sleep=waits.append, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


# --- the retry policy ---------------------------------------------------------------------------


def test_server_errors_back_off_doubling_then_give_up() -> None:
    waits: list[float] = []
    calls, op = flaky(*[Boom(503)] * 10)
    with pytest.raises(ForgeTransient, match=r"x: server error \(503: said 503\) after 4 attempts"):
        policy(waits).run("x", op, classify)  # type: ignore[arg-type]
    assert len(calls) == 4 and waits == [0.5, 1.0, 2.0]


def test_network_failures_are_retried_like_server_errors() -> None:
    waits: list[float] = []
    calls, op = flaky(Boom(None), Boom(502))
    assert policy(waits).run("x", op, classify) == "done"  # type: ignore[arg-type]
    assert len(calls) == 3 and waits == [0.5, 1.0]


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": formatdate(NOW + 12, usegmt=True)}, 12.0),
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 20)}, 20.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 9)}, 9.0),
        ({}, 0.5),
    ],
)
def test_rate_limits_wait_what_the_forge_asks(headers: dict[str, str], wait: float) -> None:
    waits: list[float] = []
    calls, op = flaky(Boom(429, headers))
    assert policy(waits).run("x", op, classify) == "done"  # type: ignore[arg-type]
    assert waits == [pytest.approx(wait, abs=1)] and len(calls) == 2


def test_a_rate_limit_longer_than_max_wait_is_not_waited() -> None:
    waits: list[float] = []
    _, op = flaky(Boom(429, {"Retry-After": "3600"}))
    with pytest.raises(ForgeRateLimited, match="asks to wait 3600s, at most 60s"):
        policy(waits, max_wait=60).run("x", op, classify)  # type: ignore[arg-type]
    assert waits == []


def test_rate_limit_attempts_are_bounded() -> None:
    waits: list[float] = []
    calls, op = flaky(*[Boom(429, {"Retry-After": "1"})] * 10)
    with pytest.raises(ForgeRateLimited, match="after 4 attempts"):
        policy(waits).run("x", op, classify)  # type: ignore[arg-type]
    assert len(calls) == 4 and waits == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("status", "headers", "kind"),
    [
        (403, {}, "final"),
        (403, {"x-ratelimit-remaining": "0"}, "rate-limited"),
        (403, {"Retry-After": "60"}, "rate-limited"),
        (429, {}, "rate-limited"),
        (401, {}, "final"),
        (404, {}, "final"),
        (409, {}, "final"),
        (422, {}, "final"),
        (500, {}, "transient"),
        (None, {}, "transient"),
    ],
)
def test_which_failures_are_worth_asking_again(
    status: int | None, headers: dict[str, str], kind: str
) -> None:
    assert verdict(HttpFailure(status, "m", headers)) == kind


def test_github_secondary_limit_wording_counts_as_rate_limit() -> None:
    failure = HttpFailure(403, "You have exceeded a secondary rate limit. Please wait.")
    assert verdict(failure) == "rate-limited"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ForgePermission),
        (403, ForgePermission),
        (404, ForgeNotFound),
        (409, ForgeConflict),
        (422, ForgeConflict),
        (400, ForgeError),
        (503, ForgeTransient),
    ],
)
def test_final_failures_become_the_bots_errors(status: int, error: type[ForgeError]) -> None:
    converted = error_for("gitlab p: open", HttpFailure(status, "nope"))
    assert type(converted) is error and str(converted).startswith("gitlab p: open: ")


def test_a_4xx_is_never_retried_and_the_library_error_is_not_chained() -> None:
    waits: list[float] = []
    calls, op = flaky(Boom(403))
    with pytest.raises(ForgePermission) as caught:
        policy(waits).run("x", op, classify)  # type: ignore[arg-type]
    assert len(calls) == 1 and waits == []
    assert caught.value.__context__ is None and caught.value.__cause__ is None


def test_other_exceptions_pass_through_untouched() -> None:
    def op() -> None:
        raise KeyError("a bug, not a forge failure")

    with pytest.raises(KeyError):
        policy([]).run("x", op, classify)


# --- credentials --------------------------------------------------------------------------------


def test_token_from_env_first_then_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("file-token-123456\n")
    config = ForgeConfig(kind="gitlab", project="p/q", token_env="T", token_file=str(secret))
    assert read_token(config, {"T": "env-token-123456"}) == "env-token-123456"
    assert read_token(config, {}) == "file-token-123456"
    assert redact("x file-token-123456 y") == "x *** y"


def test_missing_token_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="T, which is not set"):
        read_token(ForgeConfig(kind="github", project="o/r", token_env="T"), {})
    with pytest.raises(SetupError, match="cannot read"):
        read_token(ForgeConfig(kind="github", project="o/r", token_file=str(tmp_path / "no")), {})
    with pytest.raises(SetupError, match=r"set forge.token_env .* or forge.token_file"):
        read_token(ForgeConfig(kind="github", project="o/r"), {})


def test_git_gets_the_token_as_a_header_scoped_to_the_forge(tmp_path: Path) -> None:
    config = ForgeConfig(kind="github", project="o/r")
    env = git_env(config, "ghp_headerToken99", "https://ghe.example.com/o/r.git")
    assert "ghp_headerToken99" not in json.dumps(env)  # only its base64 form, registered too
    git(["init", "-q", tmp_path / "r"])

    def header_for(url: str) -> str:
        proc = git(
            ["config", "--get-urlmatch", "http.extraHeader", url],
            cwd=tmp_path / "r",
            env=env,
            check=False,
        )
        return proc.stdout.decode().strip()

    header = header_for("https://ghe.example.com/o/r.git")
    assert header.startswith("Authorization: Basic ")
    assert redact(header) == "Authorization: Basic ***"
    assert header_for("https://elsewhere.example.org/o/r.git") == ""


def test_git_over_ssh_pins_the_host_key() -> None:
    config = ForgeConfig(kind="gitlab", project="p/q", known_hosts="/etc/xsabot/known_hosts")
    env = git_env(config, "t0k3n-ssh-unused", "git@gitlab.com:p/q.git")
    assert "StrictHostKeyChecking=yes" in env["GIT_SSH_COMMAND"]
    assert "UserKnownHostsFile=/etc/xsabot/known_hosts" in env["GIT_SSH_COMMAND"]
    assert git_env(config, "t0k3n-ssh-unused", "/srv/git/manifests.git") == {}


# --- config -------------------------------------------------------------------------------------


def test_urls_are_derived_for_hosted_and_self_hosted_forges() -> None:
    hub = ForgeConfig(kind="github", project="xen/manifests", fork_project="bot/manifests")
    assert hub.resolved_api_url() == "https://api.github.com"
    assert hub.clone_url() == "https://github.com/xen/manifests.git"
    assert hub.push_url() == "https://github.com/bot/manifests.git"
    ghe = ForgeConfig(kind="github", url="https://ghe.example.com/", project="xen/m")
    assert ghe.resolved_api_url() == "https://ghe.example.com/api/v3"
    lab = ForgeConfig(kind="gitlab", url="https://git.example.org/gitlab", project="xen/m")
    assert lab.resolved_api_url() == "https://git.example.org/gitlab"
    assert lab.clone_url() == "https://git.example.org/gitlab/xen/m.git"
    explicit = ForgeConfig(kind="gitlab", api_url="https://h/api/v4", project="xen/m")
    assert explicit.resolved_api_url() == "https://h"


def test_a_remote_forge_needs_a_project() -> None:
    with pytest.raises(ValueError, match="needs `project`"):
        ForgeConfig(kind="gitlab")
    assert ForgeConfig().kind == "local"  # the default config stays valid


# --- CI variables -------------------------------------------------------------------------------


def test_gitlab_merge_request_pipeline() -> None:
    env = {
        "GITLAB_CI": "true",
        "CI_MERGE_REQUEST_IID": "17",
        "CI_PROJECT_PATH": "volunteer/manifests",
        "CI_MERGE_REQUEST_PROJECT_PATH": "xen-project/manifests",
        "CI_SERVER_URL": "https://gitlab.com",
    }
    assert merge_request_from_ci(env) == CiMergeRequest(
        "gitlab", "xen-project/manifests", 17, "https://gitlab.com", None
    )
    assert merge_request_from_ci({"GITLAB_CI": "true", "CI_PROJECT_PATH": "p/q"}) is None
    with pytest.raises(SetupError, match="not a merge request number"):
        merge_request_from_ci({**env, "CI_MERGE_REQUEST_IID": "x"})


def test_github_pull_request_event(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "pull_request": {"number": 42}}))
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "xen/manifests",
        "GITHUB_API_URL": "https://api.github.com",
    }
    found = merge_request_from_ci(env)
    assert found is not None and (found.kind, found.project, found.number) == (
        "github",
        "xen/manifests",
        42,
    )
    by_ref = {k: v for k, v in env.items() if k != "GITHUB_EVENT_PATH"}
    by_ref["GITHUB_REF"] = "refs/pull/43/merge"
    assert merge_request_from_ci(by_ref).number == 43  # type: ignore[union-attr]
    push = {**env, "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"}
    assert merge_request_from_ci(push) is None
    assert merge_request_from_ci({}) is None


# --- the plan comment ---------------------------------------------------------------------------


class MemoryForge:
    """Just the comment side of a forge: keyed comments in a dict."""

    def __init__(self, prunable: bool = True) -> None:
        self.comments: dict[str, str] = {}
        self.prunable = prunable

    def comment(self, mr_id: int, key: str, body: str) -> None:
        self.comments[key] = with_marker(key, body)

    def comment_keys(self, mr_id: int) -> list[str]:
        return list(self.comments)

    def delete_comment(self, mr_id: int, key: str) -> None:
        del self.comments[key]


def test_a_short_plan_is_one_comment_without_a_part_header() -> None:
    forge = MemoryForge()
    assert post_plan(forge, 1, "all clean", limit=500) == ["plan"]  # type: ignore[arg-type]
    assert forge.comments == {"plan": with_marker("plan", "all clean")}


def test_a_long_plan_splits_at_line_ends_within_the_limit_and_shrinks_back() -> None:
    forge = MemoryForge()
    plan = "".join(f"- manifest {i}: add XSA-{i}\n" for i in range(100))
    keys = post_plan(forge, 1, plan, limit=300)  # type: ignore[arg-type]
    assert keys[:2] == ["plan", "plan-2"] and len(keys) > 5
    assert all(len(c) <= 300 for c in forge.comments.values())
    bodies = [forge.comments[k].split("\n", 1)[1].split("\n\n", 1)[1] for k in keys]
    assert "".join(bodies) == plan
    assert forge.comments["plan"].split("\n")[1] == f"*xsabot plan, part 1 of {len(keys)}*"

    post_plan(forge, 1, "short now", limit=300)  # type: ignore[arg-type]
    assert list(forge.comments) == ["plan"]


def test_a_code_block_cut_in_two_is_closed_and_reopened() -> None:
    text = "Plan:\n```diff\n" + "".join(f"+ line {i}\n" for i in range(60)) + "```\nend\n"
    parts = split_text(text, 300)
    assert len(parts) > 2
    for part in parts:
        assert part.count("```") % 2 == 0, part
    assert parts[1].startswith("```diff\n")


def test_a_very_long_line_is_cut_hard() -> None:
    parts = split_text("x" * 1000 + "\n", 300)
    assert all(len(p) <= 300 for p in parts) and "".join(parts).replace("\n", "") == "x" * 1000


def test_only_a_marker_opening_the_comment_makes_it_the_bots() -> None:
    assert key_of(with_marker("plan", "text")) == "plan"
    assert key_of("> " + with_marker("plan", "quoted")) is None
    assert key_of(None) is None
    with pytest.raises(ValueError):
        with_marker("two words", "x")
