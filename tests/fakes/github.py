"""A stateful fake of the GitHub REST API v3 (and the two GraphQL draft mutations PyGithub uses).

Shapes follow GitHub's documentation and PyGithub's replay data: `{"message", "errors",
"documentation_url", "status"}` error bodies, 422 "Validation Failed" for a second open pull
request from the same head, pagination by `Link` header only, `x-ratelimit-*` headers on every
answer, pull requests and issues sharing one number sequence, and issue comments addressed
by their own ID. With `prefix="/api/v3"` it stands for a GitHub Enterprise server (GraphQL
then lives at `/api/graphql`).
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.repos import tip
from tests.fakes.server import JSON, FakeServer, Reply, Request

_R = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
_DOCS = "https://docs.github.com/rest"
BOT = {"login": "xsabot-bot", "id": 7, "type": "User"}
HUMAN = {"login": "volunteer", "id": 11, "type": "User"}
_COMMENT_LIMIT = 65_536
_FAILED_RUNS = {"failure", "cancelled", "timed_out", "action_required", "startup_failure"}


@dataclass
class Repo:
    id: int
    full_name: str
    default_branch: str
    parent: str | None = None
    git_dir: Path | None = None  # where its branches really are, to check a PR's head
    pulls: list[dict[str, JSON]] = field(default_factory=list)
    next_number: int = 1


class FakeGitHub(FakeServer):
    def __init__(
        self, token: str, *, prefix: str = "", comment_limit: int = _COMMENT_LIMIT
    ) -> None:
        super().__init__()
        self.token = token
        self.prefix = prefix
        self.comment_limit = comment_limit
        self.repos: dict[str, Repo] = {}
        self.comments: dict[int, dict[str, JSON]] = {}
        self._comment_on: dict[int, tuple[str, int]] = {}  # comment ID -> (repo, issue number)
        self.statuses: dict[tuple[str, str], list[dict[str, JSON]]] = {}
        self.check_runs: dict[tuple[str, str], list[dict[str, JSON]]] = {}
        self._ids = itertools.count(5000)
        r = prefix + _R
        self.route("GET", r, self._get_repo)
        self.route("GET", r + "/pulls", self._list_pulls)
        self.route("POST", r + "/pulls", self._create_pull)
        self.route("GET", r + r"/pulls/(?P<number>\d+)", self._get_pull)
        self.route("PATCH", r + r"/pulls/(?P<number>\d+)", self._edit_pull)
        self.route("GET", r + r"/issues/(?P<number>\d+)/comments", self._list_comments)
        self.route("POST", r + r"/issues/(?P<number>\d+)/comments", self._create_comment)
        self.route("PATCH", r + r"/issues/comments/(?P<cid>\d+)", self._edit_comment)
        self.route("DELETE", r + r"/issues/comments/(?P<cid>\d+)", self._delete_comment)
        self.route("POST", r + r"/statuses/(?P<sha>[0-9a-f]{40})", self._create_status)
        self.route("GET", r + r"/commits/(?P<ref>[^/]+)/status", self._combined_status)
        self.route("GET", r + r"/commits/(?P<ref>[^/]+)/check-runs", self._list_check_runs)
        self.route("POST", prefix.removesuffix("/v3") + "/graphql", self._graphql)

    @property
    def url(self) -> str:
        """What PyGithub is given as `base_url`."""
        return self.origin + self.prefix

    # --- test setup -----------------------------------------------------------------------

    def add_repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        fork_of: str | None = None,
        git_dir: Path | None = None,
    ) -> Repo:
        repo = Repo(next(self._ids), full_name, default_branch, fork_of, git_dir)
        self.repos[full_name.lower()] = repo
        return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def pull(self, full_name: str, number: int) -> dict[str, JSON]:
        return next(p for p in self.repo(full_name).pulls if p["number"] == number)

    def issue_comments(self, full_name: str, number: int) -> list[dict[str, JSON]]:
        on = (full_name.lower(), number)
        return [c for cid, c in sorted(self.comments.items()) if self._comment_on[cid] == on]

    def add_comment(self, full_name: str, number: int, body: str, user: JSON = HUMAN) -> None:
        self._new_comment(self.origin, self.repo(full_name), number, body, user)

    def add_check_run(
        self, full_name: str, sha: str, name: str, status: str, conclusion: str | None
    ) -> None:
        run = {"id": next(self._ids), "name": name, "head_sha": sha, "status": status}
        run["conclusion"] = conclusion
        self.check_runs.setdefault((full_name.lower(), sha), []).append(run)

    # --- auth -----------------------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() in ("token", "bearer") and value == self.token

    def unauthorized(self) -> Reply:
        return self._error(401, "Bad credentials")

    def error_body(self, status: int) -> JSON:
        messages = {403: "Resource not accessible by personal access token", 404: "Not Found"}
        message = messages.get(status, "Server Error" if status >= 500 else "Error")
        return {"message": message, "documentation_url": _DOCS, "status": str(status)}

    # --- endpoints ------------------------------------------------------------------------

    def _get_repo(self, request: Request, owner: str, name: str) -> Reply:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            return self._error(404, "Not Found")
        return self._ok(200, self._repo_json(request.base, repo))

    def _list_pulls(self, request: Request, owner: str, name: str) -> Reply:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            return self._error(404, "Not Found")
        q = request.query
        state = q.get("state", "open")
        items = [
            p
            for p in repo.pulls
            if (state == "all" or p["state"] == state)
            and q.get("head", p["head"]["label"]).lower() == p["head"]["label"].lower()
            and q.get("base", p["base"]["ref"]) == p["base"]["ref"]
        ]
        key = "updated_at" if q.get("sort") == "updated" else "created_at"
        items.sort(key=lambda p: (p[key], p["id"]), reverse=q.get("direction", "desc") == "desc")
        listed = [{k: v for k, v in p.items() if k not in _SINGLE_ONLY} for p in items]
        return self._page(request, listed)

    def _create_pull(self, request: Request, owner: str, name: str) -> Reply:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            return self._error(404, "Not Found")
        data = request.json()
        for required in ("head", "base", "title"):
            if not data.get(required):
                return self._invalid("PullRequest", required, "missing_field")
        head_owner, _, head_ref = data["head"].rpartition(":")
        head_repo = self._head_repo(repo, head_owner or repo.full_name.split("/")[0])
        if head_repo is None or not self._has_branch(head_repo, head_ref):
            return self._invalid("PullRequest", "head", "invalid")
        label = f"{head_repo.full_name.split('/')[0]}:{head_ref}"
        for pull in repo.pulls:
            if pull["state"] == "open" and pull["head"]["label"] == label:
                return self._error(
                    422,
                    "Validation Failed",
                    errors=[
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {label}.",
                        }
                    ],
                )
        number = self._next_number(repo)
        now = self._now()
        api = f"{request.base}{self.prefix}/repos/{repo.full_name}"
        pull = {
            "url": f"{api}/pulls/{number}",
            "id": next(self._ids),
            "node_id": f"PR_kwFake{number}_{repo.id}",
            "html_url": f"{request.base}/{repo.full_name}/pull/{number}",
            "issue_url": self._issue_url(request.base, repo, number),
            "number": number,
            "state": "open",
            "locked": False,
            "title": data["title"],
            "user": BOT,
            "body": data.get("body"),
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "draft": bool(data.get("draft", False)),
            "head": {
                "label": label,
                "ref": head_ref,
                "sha": tip(head_repo.git_dir, head_ref) if head_repo.git_dir else "0" * 40,
                "user": BOT,
                "repo": self._repo_json(request.base, head_repo),
            },
            "base": {
                "label": f"{owner}:{data['base']}",
                "ref": data["base"],
                "sha": "0" * 40,
                "user": BOT,
                "repo": self._repo_json(request.base, repo),
            },
            "author_association": "CONTRIBUTOR",
            "merged": False,
            "mergeable": None,
            "comments": 0,
        }
        repo.pulls.append(pull)
        return self._ok(201, pull, {"Location": pull["url"]})

    def _get_pull(self, request: Request, owner: str, name: str, number: str) -> Reply:
        pull = self._find_pull(owner, name, number)
        return self._ok(200, pull) if pull else self._error(404, "Not Found")

    def _edit_pull(self, request: Request, owner: str, name: str, number: str) -> Reply:
        pull = self._find_pull(owner, name, number)
        if pull is None:
            return self._error(404, "Not Found")
        data = request.json()
        for key in ("title", "body"):
            if key in data:
                pull[key] = data[key]
        if data.get("state") == "closed" and pull["state"] == "open":
            pull["state"], pull["closed_at"] = "closed", self._now()
        elif data.get("state") == "open" and pull["state"] == "closed" and not pull["merged"]:
            pull["state"], pull["closed_at"] = "open", None
        pull["updated_at"] = self._now()
        return self._ok(200, pull)

    def _list_comments(self, request: Request, owner: str, name: str, number: str) -> Reply:
        if self._find_pull(owner, name, number) is None:
            return self._error(404, "Not Found")
        return self._page(request, self.issue_comments(f"{owner}/{name}", int(number)))

    def _create_comment(self, request: Request, owner: str, name: str, number: str) -> Reply:
        if self._find_pull(owner, name, number) is None:
            return self._error(404, "Not Found")
        body = request.json().get("body")
        if not body:
            return self._invalid("IssueComment", "body", "missing_field")
        if len(body) > self.comment_limit:
            return self._too_long()
        repo = self.repos[f"{owner}/{name}".lower()]
        comment = self._new_comment(request.base, repo, int(number), body, BOT)
        return self._ok(201, comment, {"Location": comment["url"]})

    def _edit_comment(self, request: Request, owner: str, name: str, cid: str) -> Reply:
        comment = self.comments.get(int(cid))
        if comment is None:
            return self._error(404, "Not Found")
        if comment["user"]["id"] != BOT["id"]:
            return self._error(403, "Must have admin rights to Repository.")
        body = request.json().get("body", "")
        if len(body) > self.comment_limit:
            return self._too_long()
        comment["body"], comment["updated_at"] = body, self._now()
        return self._ok(200, comment)

    def _delete_comment(self, request: Request, owner: str, name: str, cid: str) -> Reply:
        comment = self.comments.get(int(cid))
        if comment is None:
            return self._error(404, "Not Found")
        if comment["user"]["id"] != BOT["id"]:
            return self._error(403, "Must have admin rights to Repository.")
        del self.comments[int(cid)]
        return Reply(204, headers=self._rate_headers())

    def _create_status(self, request: Request, owner: str, name: str, sha: str) -> Reply:
        if f"{owner}/{name}".lower() not in self.repos:
            return self._error(404, "Not Found")
        data = request.json()
        if data.get("state") not in ("error", "failure", "pending", "success"):
            return self._invalid("Status", "state", "invalid")
        if len(data.get("description") or "") > 140:
            return self._invalid("Status", "description", "custom")
        status = {
            "id": next(self._ids),
            "state": data["state"],
            "context": data.get("context") or "default",
            "description": data.get("description"),
            "target_url": data.get("target_url"),
            "created_at": self._now(),
            "creator": BOT,
        }
        self.statuses.setdefault((f"{owner}/{name}".lower(), sha), []).append(status)
        return self._ok(201, status)

    def _combined_status(self, request: Request, owner: str, name: str, ref: str) -> Reply:
        full = f"{owner}/{name}".lower()
        if full not in self.repos:
            return self._error(404, "Not Found")
        latest: dict[str, JSON] = {}
        for status in self.statuses.get((full, ref), []):
            latest[status["context"]] = status
        states = [s["state"] for s in latest.values()]
        if any(s in ("error", "failure") for s in states):
            combined = "failure"
        elif not states or "pending" in states:
            combined = "pending"  # GitHub says pending when there are no statuses at all
        else:
            combined = "success"
        body = {
            "state": combined,
            "statuses": list(latest.values()),
            "sha": ref,
            "total_count": len(latest),
            "repository": self._repo_json(request.base, self.repos[full]),
            "commit_url": f"{request.base}{self.prefix}/repos/{owner}/{name}/commits/{ref}",
            "url": f"{request.base}{self.prefix}/repos/{owner}/{name}/commits/{ref}/status",
        }
        return self._ok(200, body)

    def _list_check_runs(self, request: Request, owner: str, name: str, ref: str) -> Reply:
        full = f"{owner}/{name}".lower()
        if full not in self.repos:
            return self._error(404, "Not Found")
        runs = self.check_runs.get((full, ref), [])
        reply = self._page(request, runs)
        reply.body = {"total_count": len(runs), "check_runs": reply.body}
        return reply

    def _graphql(self, request: Request) -> Reply:
        data = request.json()
        match = re.search(
            r"\b(convertPullRequestToDraft|markPullRequestReadyForReview)\(", data["query"]
        )
        if match is None:
            return self._ok(200, {"errors": [{"message": "fake: unknown GraphQL operation"}]})
        name = match.group(1)
        node = data.get("variables", {}).get("input", {}).get("pullRequestId")
        pull = next((p for r in self.repos.values() for p in r.pulls if p["node_id"] == node), None)
        if pull is None:
            error = {
                "type": "NOT_FOUND",
                "path": [name],
                "message": f"Could not resolve to a node with the global id of '{node}'",
            }
            return self._ok(200, {"data": {name: None}, "errors": [error]})
        pull["draft"] = name == "convertPullRequestToDraft"
        result = {"clientMutationId": None, "pullRequest": {"isDraft": pull["draft"]}}
        return self._ok(200, {"data": {name: result}})

    # --- internals ------------------------------------------------------------------------

    def merge(self, full_name: str, number: int) -> None:
        pull = self.pull(full_name, number)
        pull.update(state="closed", merged=True, merged_at=self._now(), closed_at=self._now())

    def _head_repo(self, base: Repo, owner: str) -> Repo | None:
        for repo in self.repos.values():
            same = repo.full_name.lower() == base.full_name.lower()
            fork = (repo.parent or "").lower() == base.full_name.lower()
            if (same or fork) and repo.full_name.split("/")[0].lower() == owner.lower():
                return repo
        return None

    @staticmethod
    def _has_branch(repo: Repo, ref: str) -> bool:
        return repo.git_dir is None or tip(repo.git_dir, ref) is not None

    def _find_pull(self, owner: str, name: str, number: str) -> dict[str, JSON] | None:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            return None
        return next((p for p in repo.pulls if p["number"] == int(number)), None)

    def _new_comment(
        self, base: str, repo: Repo, number: int, body: str, user: JSON
    ) -> dict[str, JSON]:
        cid = next(self._ids)
        now = self._now()
        comment = {
            "id": cid,
            "node_id": f"IC_kwFake{cid}",
            "url": f"{base}{self.prefix}/repos/{repo.full_name}/issues/comments/{cid}",
            "html_url": f"{base}/{repo.full_name}/pull/{number}#issuecomment-{cid}",
            "issue_url": self._issue_url(base, repo, number),
            "body": body,
            "user": user,
            "created_at": now,
            "updated_at": now,
            "author_association": "CONTRIBUTOR",
        }
        self.comments[cid] = comment
        self._comment_on[cid] = (repo.full_name.lower(), number)
        return comment

    def _issue_url(self, base: str, repo: Repo, number: int) -> str:
        return f"{base}{self.prefix}/repos/{repo.full_name}/issues/{number}"

    @staticmethod
    def _next_number(repo: Repo) -> int:
        number, repo.next_number = repo.next_number, repo.next_number + 1
        return number

    def _repo_json(self, base: str, repo: Repo) -> dict[str, JSON]:
        owner = repo.full_name.split("/")[0]
        return {
            "id": repo.id,
            "node_id": f"R_kgFake{repo.id}",
            "name": repo.full_name.split("/")[1],
            "full_name": repo.full_name,
            "owner": {"login": owner, "id": repo.id + 1, "type": "Organization"},
            "private": False,
            "fork": repo.parent is not None,
            "url": f"{base}{self.prefix}/repos/{repo.full_name}",
            "html_url": f"{base}/{repo.full_name}",
            "clone_url": f"{base}/{repo.full_name}.git",
            "default_branch": repo.default_branch,
        }

    def _now(self) -> str:
        # Seconds are all GitHub gives; a counter keeps creation order sortable in tests.
        n = next(self._ids)
        return f"2026-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"

    @staticmethod
    def _rate_headers() -> dict[str, str]:
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-used": "1",
            "x-ratelimit-resource": "core",
        }

    def _ok(self, status: int, body: JSON, headers: dict[str, str] | None = None) -> Reply:
        return Reply(status, body, {**self._rate_headers(), **(headers or {})})

    def _error(self, status: int, message: str, **extra: Any) -> Reply:
        body = {"message": message, **extra, "documentation_url": _DOCS, "status": str(status)}
        return Reply(status, body, self._rate_headers())

    def _invalid(self, resource: str, field_name: str, code: str) -> Reply:
        error = {"resource": resource, "field": field_name, "code": code}
        return self._error(422, "Validation Failed", errors=[error])

    def _too_long(self) -> Reply:
        error = {
            "resource": "IssueComment",
            "code": "unprocessable",
            "field": "data",
            "message": f"Body is too long (maximum is {self.comment_limit} characters)",
        }
        return self._error(422, "Validation Failed", errors=[error])

    def _page(self, request: Request, items: list[JSON]) -> Reply:
        chunk, page, last, per_page = self.page_of(request, items, default=30)
        headers = self._rate_headers()
        if last > 1:  # GitHub sends Link only when there is more than one page
            headers["Link"] = ", ".join(self.page_links(request, page, last, per_page))
        return Reply(200, chunk, headers)


# Fields GitHub includes only when a single pull request is fetched, not in lists.
_SINGLE_ONLY = {"merged", "mergeable", "comments"}
