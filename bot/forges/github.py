"""GitHub (github.com or Enterprise) behind the Forge port, with PyGithub.

Pull requests live in the manifests repository; with `fork_project` the bot's branches are
pushed to the fork and its pull requests have the head `<fork owner>:<branch>`. A pull
request is the bot's when its head is a branch under `xsabot/` of the bot's repository and
its body carries the bot's marker for that branch. Comments are
issue comments (the conversation), statuses are commit statuses, and the check gate also
reads check runs, where GitHub Actions reports. PyGithub's retries and write throttling are
switched off: `bot.forges.http` decides what to wait for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import github
import github.GithubException
import requests

from bot.config import Config, ForgeConfig, Identity
from bot.core.ports import (
    BOT_BRANCH_PREFIX,
    CommitState,
    MergedProposal,
    MergeRequest,
    Proposal,
    bot_marker_in,
    content_hash_in,
)
from bot.forges.credentials import git_env, read_token
from bot.forges.http import HttpFailure, RetryPolicy
from bot.forges.plan_comment import GITHUB_COMMENT_LIMIT, key_of, with_marker
from bot.forges.remote_branch import (
    RemoteBranches,
    check_close,
    check_proposal,
    check_update,
)

T = TypeVar("T")
_RUN_FAILED = {"failure", "cancelled", "timed_out", "action_required", "startup_failure"}
_DESCRIPTION_LIMIT = 140  # GitHub refuses longer status descriptions


class GitHubForge:
    """The manifests repository on GitHub."""

    comment_limit = GITHUB_COMMENT_LIMIT

    def __init__(
        self,
        config: ForgeConfig,
        *,
        token: str,
        cache: Path,
        identity: Identity,
        policy: RetryPolicy | None = None,
        per_page: int = 100,
    ) -> None:
        assert config.project, "ForgeConfig validation guarantees a project"
        self._project = config.project
        self._head_project = config.fork_project or config.project
        self._head_owner = self._head_project.split("/")[0]
        self._policy = policy or RetryPolicy()
        self._gh = github.Github(
            auth=github.Auth.Token(token),
            base_url=config.resolved_api_url(),
            timeout=max(1, round(config.timeout)),  # PyGithub insists on whole seconds
            per_page=per_page,
            user_agent="xsabot",
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,  # no GET before every PATCH: objects are fetched only when read
        )
        self._repo = self._gh.get_repo(self._project)
        self._default: str | None = None
        self._branches = RemoteBranches(
            cache,
            fetch_url=config.clone_url(),
            push_url=config.push_url(),
            env_for=lambda url: git_env(config, token, url),
            identity=identity,
        )

    @classmethod
    def from_config(cls, config: Config, *, policy: RetryPolicy | None = None) -> GitHubForge:
        forge = config.forge
        slug = (forge.project or "repository").replace("/", "-")
        return cls(
            forge,
            token=read_token(forge),
            cache=config.state / "forges" / f"github-{slug}.git",
            identity=config.identity,
            policy=policy,
        )

    # --- the Forge port -------------------------------------------------------------------

    def default_branch(self) -> str:
        return self._run("read the default branch", self._default_branch)

    def find(self, branch: str) -> MergeRequest | None:
        return self._run(f"find the pull request from {branch}", lambda: self._find(branch))

    def list_open(self) -> list[MergeRequest]:
        def run() -> list[MergeRequest]:
            pulls = self._repo.get_pulls(state="open", sort="created", direction="asc")
            return [
                self._merge_request(pr)
                for pr in self._ours(pulls)
                if str(pr.head.ref).startswith(BOT_BRANCH_PREFIX)
            ]

        return self._run("list the bot's open pull requests", run)

    def open(self, proposal: Proposal) -> MergeRequest:
        check_proposal(proposal)
        return self._run(
            f"open a pull request from {proposal.branch}", lambda: self._open(proposal)
        )

    def update(self, mr: MergeRequest, proposal: Proposal) -> MergeRequest:
        check_update(mr, proposal)
        if mr.content_hash == proposal.content_hash():
            return mr  # the hidden marker says the pull request already shows this proposal

        def run() -> MergeRequest:
            self._push(proposal)
            pr = self._repo.get_pull(mr.id)
            pr.edit(title=proposal.title, body=proposal.body_with_marker())
            # Draft or not is not part of the REST edit; GitHub only changes it by GraphQL.
            if bool(pr.draft) != proposal.draft:
                if proposal.draft:
                    pr.convert_to_draft()
                else:
                    pr.mark_ready_for_review()
            return self._merge_request(pr)

        return self._run(f"update pull request #{mr.id}", run)

    def close(self, mr: MergeRequest, comment: str) -> None:
        if check_close(mr):

            def run() -> None:
                # Keyed, so running this again after a failure halfway adds no second comment.
                self._comment(mr.id, "close", comment)
                self._repo.get_pull(mr.id).edit(state="closed")

            self._run(f"close pull request #{mr.id}", run)

    def comment(self, mr_id: int, key: str, body: str) -> None:
        self._run(f"comment on pull request #{mr_id}", lambda: self._comment(mr_id, key, body))

    def comment_keys(self, mr_id: int) -> list[str]:
        return self._run(
            f"read the comments of pull request #{mr_id}",
            lambda: list(self._keyed_comments(mr_id)),
        )

    def delete_comment(self, mr_id: int, key: str) -> None:
        def run() -> None:
            found = self._keyed_comments(mr_id).get(key)
            if found is not None:
                found.delete()

        self._run(f"delete a comment on pull request #{mr_id}", run)

    def tidy_merged(self, open_mrs: Sequence[MergeRequest] = ()) -> list[MergedProposal]:
        def merged() -> list[MergeRequest]:
            pulls = self._repo.get_pulls(state="closed", sort="created", direction="asc")
            merged = [
                mr
                for mr in (self._merge_request(pr) for pr in self._ours(pulls))
                if mr.state == "merged" and mr.branch.startswith(BOT_BRANCH_PREFIX)
            ]
            return merged

        def run() -> list[MergedProposal]:
            return self._branches.remove_merged(
                merged, open_branches={mr.branch for mr in open_mrs}, base=self._default_branch
            )

        return self._run("remove the branches of the bot's merged pull requests", run)

    def set_status(
        self, sha: str, state: CommitState, context: str, description: str, url: str | None = None
    ) -> None:
        description = _shorten(description, _DESCRIPTION_LIMIT)

        def run() -> None:
            commit = self._repo.get_commit(sha)
            # GitHub keeps every status posted; posting an unchanged one only adds noise.
            for current in commit.get_combined_status().statuses:
                if current.context == context:
                    if current.state == state and (current.description or "") == description:
                        return
                    break
            if url:
                commit.create_status(
                    state, target_url=url, description=description, context=context
                )
            else:
                commit.create_status(state, description=description, context=context)

        self._run(f"set status {context} on {sha[:12]}", run)

    def check_status(self, sha: str) -> Literal["pending", "success", "failure", "unknown"]:
        def run() -> Literal["pending", "success", "failure", "unknown"]:
            commit = self._repo.get_commit(sha)
            statuses = [s.state for s in commit.get_combined_status().statuses]
            runs = [(r.status, r.conclusion) for r in commit.get_check_runs()]
            if not statuses and not runs:
                return "unknown"
            if any(s in ("failure", "error") for s in statuses) or any(
                c in _RUN_FAILED for _, c in runs
            ):
                return "failure"
            if "pending" in statuses or any(s != "completed" for s, _ in runs):
                return "pending"
            return "success"

        return self._run(f"read the status of {sha[:12]}", run)

    # --- the work, unretried (the public methods retry it whole) ---------------------------

    def _open(self, proposal: Proposal) -> MergeRequest:
        existing = self._find(proposal.branch)
        if existing is not None and existing.state == "open":
            return existing  # open never edits: updating is the caller's decision
        base = self._push(proposal)
        head = proposal.branch
        if self._head_project != self._project:
            head = f"{self._head_owner}:{proposal.branch}"
        try:
            pr = self._repo.create_pull(
                base=base,
                head=head,
                title=proposal.title,
                body=proposal.body_with_marker(),
                draft=proposal.draft,
            )
        except github.GithubException as exc:
            # 422 "A pull request already exists": another replica opened it between our
            # look and our create. Any other 422 (a bad head, say) is raised as it is.
            if exc.status != 422:
                raise
            existing = self._find(proposal.branch)
            if existing is None or existing.state != "open":
                raise
            return existing
        return self._merge_request(pr)

    def _push(self, proposal: Proposal) -> str:
        base = self._default_branch()
        self._branches.push(
            proposal.branch,
            base=base,
            files=proposal.files,
            message=proposal.commit_message(body=False),
        )
        return base

    def _find(self, branch: str) -> MergeRequest | None:
        pulls = self._repo.get_pulls(
            state="all", head=f"{self._head_owner}:{branch}", sort="created", direction="desc"
        )
        for pr in self._ours(pulls):
            if pr.head.ref == branch:
                return self._merge_request(pr)
        return None

    def _comment(self, mr_id: int, key: str, body: str) -> None:
        text = with_marker(key, body)
        found = self._keyed_comments(mr_id).get(key)
        if found is None:
            self._repo.get_issue(mr_id).create_comment(text)
        elif found.body != text:
            found.edit(text)

    def _keyed_comments(self, mr_id: int) -> dict[str, Any]:
        """The bot's keyed comments by key; the oldest wins if a race ever made two."""
        keyed: dict[str, Any] = {}
        for found in self._repo.get_issue(mr_id).get_comments():
            key = key_of(found.body)
            if key is not None:
                keyed.setdefault(key, found)
        return keyed

    def _default_branch(self) -> str:
        if self._default is None:
            self._default = str(self._repo.default_branch)
        return self._default

    def _ours(self, pulls: Iterable[Any]) -> Iterable[Any]:
        """Only pull requests whose head is in the bot's repository (a volunteer's fork with
        the same branch name is someone else's) and whose body carries the bot's marker (a
        maintainer's own pull request from a branch under `xsabot/` is not the bot's)."""
        wanted = self._head_project.lower()
        for pr in pulls:
            repo = pr.head.repo
            if (
                repo is not None
                and str(repo.full_name).lower() == wanted
                and bot_marker_in(pr.body, str(pr.head.ref))
            ):
                yield pr

    @staticmethod
    def _merge_request(pr: Any) -> MergeRequest:
        # `merged` is only in single-PR answers; `merged_at` is in lists too.
        state: Literal["open", "merged", "closed"] = (
            "merged" if pr.merged_at else ("open" if pr.state == "open" else "closed")
        )
        return MergeRequest(
            id=int(pr.number),
            branch=str(pr.head.ref),
            title=str(pr.title),
            state=state,
            draft=bool(pr.draft),
            url=str(pr.html_url),
            content_hash=content_hash_in(pr.body),
        )

    def _run(self, what: str, operation: Callable[[], T]) -> T:
        return self._policy.run(f"github {self._project}: {what}", operation, _classify)


def _classify(exc: BaseException) -> HttpFailure | None:
    if isinstance(exc, github.GithubException):
        return HttpFailure(exc.status, _message(exc.data, exc.message), exc.headers or {})
    if isinstance(exc, github.BadAttributeException | requests.RequestException):
        return HttpFailure(None, f"{type(exc).__name__}: {exc}")
    return None


def _message(data: object, fallback: str | None) -> str:
    """GitHub's `message`, with the `errors` details that say what was wrong."""
    if not isinstance(data, dict):
        return fallback or str(data or "")
    parts = [str(data.get("message") or fallback or "")]
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            detail = error.get("message") or " ".join(
                str(error[k]) for k in ("resource", "field", "code") if error.get(k)
            )
            parts.append(str(detail))
        else:
            parts.append(str(error))
    return "; ".join(p for p in parts if p)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
