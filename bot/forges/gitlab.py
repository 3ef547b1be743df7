"""GitLab (gitlab.com or self-hosted) behind the Forge port, with python-gitlab.

Merge requests live in the manifests project; with `fork_project` the bot's branches are
pushed to the fork and its merge requests go from the fork into the project. A merge request
is the bot's when its source branch is under `xsabot/` in the bot's source project and its
description carries the bot's marker for that branch: a maintainer's own merge request from
such a branch is never listed, updated or closed.
python-gitlab's own retries are switched off (see `_Client`): `bot.forges.http` decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import gitlab
import gitlab.exceptions
import requests

from bot.config import Config, ForgeConfig, Identity
from bot.core.ports import (
    BOT_BRANCH_PREFIX,
    CommitState,
    MergedProposal,
    MergeRequest,
    MergeRequestState,
    Proposal,
    bot_marker_in,
    content_hash_in,
)
from bot.forges.credentials import git_env, read_token
from bot.forges.http import HttpFailure, RetryPolicy
from bot.forges.plan_comment import GITLAB_NOTE_LIMIT, key_of, with_marker
from bot.forges.remote_branch import (
    RemoteBranches,
    check_close,
    check_proposal,
    check_update,
)

T = TypeVar("T")
_DRAFT_PREFIX = re.compile(r"^\s*(?:\[draft\]|\(draft\)|draft:|draft\s-|wip:)\s*", re.I)
_STATES: dict[str, MergeRequestState] = {
    "opened": "open",
    "locked": "open",
    "merged": "merged",
    "closed": "closed",
}
# GitLab has no "error" commit state; both of the port's failures are "failed" there.
_STATUS_OUT = {"pending": "pending", "success": "success", "failure": "failed", "error": "failed"}
_STATUS_PENDING = {"created", "waiting_for_resource", "preparing", "pending", "running"}
_STATUS_FAILED = {"failed", "canceled"}


class _Client(gitlab.Gitlab):
    """python-gitlab, minus its own retry loops (it sleeps on 429 unbounded by default)."""

    def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["obey_rate_limit"] = False
        kwargs["retry_transient_errors"] = False
        return super().http_request(verb, path, *args, **kwargs)


class GitLabForge:
    """The manifests project on a GitLab instance."""

    comment_limit = GITLAB_NOTE_LIMIT

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
        self._project_path = config.project
        self._fork_path = config.fork_project
        self._policy = policy or RetryPolicy()
        self._gl = _Client(
            config.resolved_api_url(),
            private_token=token,
            timeout=config.timeout,
            per_page=per_page,
            user_agent="xsabot",
        )
        # GitLab's errors do not carry the response, so remember the last one's headers:
        # Retry-After and RateLimit-Reset are what the retry policy waits by.
        self._last_headers: Mapping[str, str] = {}
        self._gl.session.hooks["response"].append(self._remember_headers)
        self._branches = RemoteBranches(
            cache,
            fetch_url=config.clone_url(),
            push_url=config.push_url(),
            env_for=lambda url: git_env(config, token, url),
            identity=identity,
        )
        self._upstream: Any = None
        self._source_id: int | None = None

    @classmethod
    def from_config(cls, config: Config, *, policy: RetryPolicy | None = None) -> GitLabForge:
        forge = config.forge
        return cls(
            forge,
            token=read_token(forge),
            cache=config.state / "forges" / f"gitlab-{_slug(forge.project or '')}.git",
            identity=config.identity,
            policy=policy,
        )

    # --- the Forge port -------------------------------------------------------------------

    def default_branch(self) -> str:
        return self._run("read the default branch", lambda: str(self._project().default_branch))

    def find(self, branch: str) -> MergeRequest | None:
        return self._run(f"find the merge request from {branch}", lambda: self._find(branch))

    def list_open(self) -> list[MergeRequest]:
        def run() -> list[MergeRequest]:
            found = self._project().mergerequests.list(state="opened", iterator=True)
            return [
                self._merge_request(mr.attributes)
                for mr in self._ours(found)
                if str(mr.source_branch).startswith(BOT_BRANCH_PREFIX)
            ]

        return self._run("list the bot's open merge requests", run)

    def open(self, proposal: Proposal) -> MergeRequest:
        check_proposal(proposal)
        return self._run(
            f"open a merge request from {proposal.branch}", lambda: self._open(proposal)
        )

    def update(self, mr: MergeRequest, proposal: Proposal) -> MergeRequest:
        check_update(mr, proposal)
        if mr.content_hash == proposal.content_hash():
            return mr  # the hidden marker says the merge request already shows this proposal

        def run() -> MergeRequest:
            self._push(proposal)
            data = self._project().mergerequests.update(
                mr.id, {"title": _title(proposal), "description": proposal.body_with_marker()}
            )
            return self._merge_request(data)

        return self._run(f"update merge request !{mr.id}", run)

    def close(self, mr: MergeRequest, comment: str) -> None:
        if check_close(mr):

            def run() -> None:
                # Keyed, so running this again after a failure halfway adds no second comment.
                self._comment(mr.id, "close", comment)
                self._project().mergerequests.update(mr.id, {"state_event": "close"})

            self._run(f"close merge request !{mr.id}", run)

    def comment(self, mr_id: int, key: str, body: str) -> None:
        self._run(f"comment on merge request !{mr_id}", lambda: self._comment(mr_id, key, body))

    def comment_keys(self, mr_id: int) -> list[str]:
        return self._run(
            f"read the comments of merge request !{mr_id}",
            lambda: list(self._keyed_notes(mr_id)),
        )

    def delete_comment(self, mr_id: int, key: str) -> None:
        def run() -> None:
            note = self._keyed_notes(mr_id).get(key)
            if note is not None:
                self._mr_handle(mr_id).notes.delete(note.id)

        self._run(f"delete a comment on merge request !{mr_id}", run)

    def tidy_merged(self, open_mrs: Sequence[MergeRequest] = ()) -> list[MergedProposal]:
        def merged() -> list[MergeRequest]:
            found = self._project().mergerequests.list(state="merged", iterator=True)
            return [
                self._merge_request(mr.attributes)
                for mr in self._ours(found)
                if str(mr.source_branch).startswith(BOT_BRANCH_PREFIX)
            ]
            return merged

        def run() -> list[MergedProposal]:
            return self._branches.remove_merged(
                merged,
                open_branches={mr.branch for mr in open_mrs},
                base=lambda: str(self._project().default_branch),
            )

        return self._run("remove the branches of the bot's merged merge requests", run)

    def set_status(
        self, sha: str, state: CommitState, context: str, description: str, url: str | None = None
    ) -> None:
        def run() -> None:
            commit = self._project().commits.get(sha, lazy=True)
            wanted = _STATUS_OUT[state]
            # GitLab refuses to "transition" a status to the state it already has (400), so
            # a status already in that state is left alone (its description with it). Without
            # `all`, GitLab lists only the latest status of each name.
            current = next(iter(commit.statuses.list(name=context, iterator=True)), None)
            if current is not None and current.status == wanted:
                return
            data = {"state": wanted, "name": context, "description": description}
            if url:
                data["target_url"] = url
            commit.statuses.create(data)

        self._run(f"set status {context} on {sha[:12]}", run)

    def check_status(self, sha: str) -> Literal["pending", "success", "failure", "unknown"]:
        def run() -> Literal["pending", "success", "failure", "unknown"]:
            commit = self._project().commits.get(sha, lazy=True)
            states = [
                str(s.status)
                for s in commit.statuses.list(iterator=True)
                if not (s.attributes.get("allow_failure") and s.status in _STATUS_FAILED)
            ]
            if not states:
                return "unknown"
            if any(s in _STATUS_FAILED for s in states):
                return "failure"
            if any(s in _STATUS_PENDING for s in states):
                return "pending"
            return "success"

        return self._run(f"read the status of {sha[:12]}", run)

    # --- the work, unretried (the public methods retry it whole) ---------------------------

    def _open(self, proposal: Proposal) -> MergeRequest:
        existing = self._find(proposal.branch)
        if existing is not None and existing.state == "open":
            return existing  # open never edits: updating is the caller's decision
        base = self._push(proposal)
        data: dict[str, Any] = {
            "source_branch": proposal.branch,
            "target_branch": base,
            "title": _title(proposal),
            "description": proposal.body_with_marker(),
        }
        source = self._project()
        if self._fork_path:
            data["target_project_id"] = self._project().id
            source = self._gl.projects.get(self._fork_path, lazy=True)
        try:
            created = source.mergerequests.create(data)
        except gitlab.exceptions.GitlabCreateError as exc:
            # 409: another replica opened it between our look and our create.
            if exc.response_code != 409:
                raise
            existing = self._find(proposal.branch)
            if existing is None or existing.state != "open":
                raise
            return existing
        return self._merge_request(created.attributes)

    def _push(self, proposal: Proposal) -> str:
        base = str(self._project().default_branch)
        self._branches.push(
            proposal.branch,
            base=base,
            files=proposal.files,
            message=proposal.commit_message(body=False),
        )
        return base

    def _find(self, branch: str) -> MergeRequest | None:
        found = self._project().mergerequests.list(
            source_branch=branch, state="all", order_by="created_at", sort="desc", iterator=True
        )
        for mr in self._ours(found):
            return self._merge_request(mr.attributes)
        return None

    def _comment(self, mr_id: int, key: str, body: str) -> None:
        text = with_marker(key, body)
        note = self._keyed_notes(mr_id).get(key)
        notes = self._mr_handle(mr_id).notes
        if note is None:
            notes.create({"body": text})
        elif note.body != text:
            notes.update(note.id, {"body": text})

    def _keyed_notes(self, mr_id: int) -> dict[str, Any]:
        """The bot's keyed notes by key; the oldest wins if a race ever made two."""
        notes = self._mr_handle(mr_id).notes.list(order_by="created_at", sort="asc", iterator=True)
        keyed: dict[str, Any] = {}
        for note in notes:
            key = None if note.attributes.get("system") else key_of(note.body)
            if key is not None:
                keyed.setdefault(key, note)
        return keyed

    def _mr_handle(self, mr_id: int) -> Any:
        return self._project().mergerequests.get(mr_id, lazy=True)

    def _project(self) -> Any:
        if self._upstream is None:
            self._upstream = self._gl.projects.get(self._project_path)
        return self._upstream

    def _ours(self, mrs: Iterable[Any]) -> Iterable[Any]:
        """Only merge requests from the bot's source project (a fork with the same branch
        name is someone else's) that carry the bot's marker (a maintainer's own is not)."""
        if self._source_id is None:
            source = self._gl.projects.get(self._fork_path) if self._fork_path else self._project()
            self._source_id = int(source.id)
        return (
            mr
            for mr in mrs
            if mr.source_project_id == self._source_id
            and bot_marker_in(mr.attributes.get("description"), str(mr.source_branch))
        )

    def _merge_request(self, data: Mapping[str, Any]) -> MergeRequest:
        title = str(data["title"])
        return MergeRequest(
            id=int(data["iid"]),
            branch=str(data["source_branch"]),
            title=_DRAFT_PREFIX.sub("", title, count=1),
            state=_STATES.get(str(data["state"]), "closed"),
            draft=bool(data.get("draft") or data.get("work_in_progress")),
            url=str(data.get("web_url") or ""),
            content_hash=content_hash_in(data.get("description")),
        )

    def _run(self, what: str, operation: Callable[[], T]) -> T:
        return self._policy.run(f"gitlab {self._project_path}: {what}", operation, self._classify)

    def _remember_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_headers = dict(response.headers)

    def _classify(self, exc: BaseException) -> HttpFailure | None:
        if isinstance(exc, gitlab.exceptions.GitlabError):
            if exc.response_code is None:
                return HttpFailure(None, f"{type(exc).__name__}: {_message(exc.error_message)}")
            return HttpFailure(exc.response_code, _message(exc.error_message), self._last_headers)
        if isinstance(exc, requests.RequestException):
            return HttpFailure(None, f"{type(exc).__name__}: {exc}")
        return None


def _title(proposal: Proposal) -> str:
    # GitLab marks drafts by the title prefix; creating or editing with it sets the flag.
    return f"Draft: {proposal.title}" if proposal.draft else proposal.title


def _message(value: object) -> str:
    """GitLab's `message` is a string, a list of strings, or {field: [messages]}."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return "; ".join(_message(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_message(v)}" for k, v in value.items())
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "project"
