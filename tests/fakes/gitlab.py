"""A stateful fake of the GitLab REST API v4: the endpoints the GitLab forge uses, no more.

Shapes follow GitLab's documentation and python-gitlab's tests: projects addressed by ID or by
URL-encoded path, merge requests by project-scoped `iid`, `{"message": ...}` error bodies (a
string, a list, or {field: [...]}), offset pagination with `Link`, `X-Page`, `X-Next-Page`,
`X-Total` and friends, 409 for a second open merge request from the same branch, `Draft:`
titles, and the "cannot transition" 400 when a commit status is posted in the state it has.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import JSON, FakeServer, Reply, Request

API = "/api/v4"
_P = API + r"/projects/(?P<pid>[^/]+)"
_DRAFT = ("draft:", "[draft]", "(draft)", "draft -")
BOT = {"id": 7, "username": "xsabot", "name": "xsabot", "state": "active"}
HUMAN = {"id": 11, "username": "volunteer", "name": "A Volunteer", "state": "active"}
_NOTE_LIMIT = 1_000_000


@dataclass
class Project:
    id: int
    path: str
    default_branch: str
    forked_from: int | None = None
    mrs: list[dict[str, JSON]] = field(default_factory=list)


class FakeGitLab(FakeServer):
    """`prefix` puts the instance under a relative URL root (self-hosted `/gitlab`)."""

    def __init__(self, token: str, *, prefix: str = "", note_limit: int = _NOTE_LIMIT) -> None:
        super().__init__()
        self.token = token
        self.prefix = prefix
        self.note_limit = note_limit
        self.projects: dict[int, Project] = {}
        self.notes: dict[tuple[int, int], list[dict[str, JSON]]] = {}
        self.statuses: dict[tuple[int, str], list[dict[str, JSON]]] = {}
        self._ids = itertools.count(1000)
        p = prefix + _P
        self.route("GET", p, self._get_project)
        self.route("GET", p + "/merge_requests", self._list_mrs)
        self.route("POST", p + "/merge_requests", self._create_mr)
        self.route("PUT", p + r"/merge_requests/(?P<iid>\d+)", self._update_mr)
        self.route("GET", p + r"/merge_requests/(?P<iid>\d+)/notes", self._list_notes)
        self.route("POST", p + r"/merge_requests/(?P<iid>\d+)/notes", self._create_note)
        self.route("PUT", p + r"/merge_requests/(?P<iid>\d+)/notes/(?P<nid>\d+)", self._edit_note)
        self.route(
            "DELETE", p + r"/merge_requests/(?P<iid>\d+)/notes/(?P<nid>\d+)", self._delete_note
        )
        self.route("POST", p + r"/statuses/(?P<sha>[0-9a-f]+)", self._create_status)
        self.route(
            "GET", p + r"/repository/commits/(?P<sha>[0-9a-f]+)/statuses", self._list_statuses
        )

    @property
    def url(self) -> str:
        """What python-gitlab is given (it appends /api/v4)."""
        return self.origin + self.prefix

    # --- test setup -----------------------------------------------------------------------

    def add_project(
        self, path: str, *, default_branch: str = "main", forked_from: str | None = None
    ) -> Project:
        parent = self.project(forked_from).id if forked_from else None
        project = Project(next(self._ids), path, default_branch, parent)
        self.projects[project.id] = project
        return project

    def project(self, ref: str | int) -> Project:
        for p in self.projects.values():
            if str(p.id) == str(ref) or p.path == str(ref):
                return p
        raise KeyError(ref)

    def add_note(self, project: str, iid: int, body: str, *, author: JSON = HUMAN) -> None:
        """A comment by someone else (a volunteer), as the forge would hold it."""
        pid = self.project(project).id
        self._notes(pid, iid).append(self._note(body, author))

    def mr(self, project: str, iid: int) -> dict[str, JSON]:
        return next(m for m in self.project(project).mrs if m["iid"] == iid)

    def mr_notes(self, project: str, iid: int) -> list[dict[str, JSON]]:
        return self._notes(self.project(project).id, iid)

    # --- auth -----------------------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        return request.headers.get("private-token") == self.token

    def unauthorized(self) -> Reply:
        return Reply(401, {"message": "401 Unauthorized"})

    # --- endpoints ------------------------------------------------------------------------

    def _get_project(self, request: Request, pid: str) -> Reply:
        project = self._find_project(pid)
        if project is None:
            return Reply(404, {"message": "404 Project Not Found"})
        return Reply(200, self._project_json(request, project))

    def _list_mrs(self, request: Request, pid: str) -> Reply:
        project = self._find_project(pid)
        if project is None:
            return Reply(404, {"message": "404 Project Not Found"})
        q = request.query
        state = q.get("state", "all")
        items = [
            m
            for m in project.mrs
            if (state == "all" or m["state"] == state)
            and q.get("source_branch", m["source_branch"]) == m["source_branch"]
            and q.get("target_branch", m["target_branch"]) == m["target_branch"]
        ]
        key = "updated_at" if q.get("order_by") == "updated_at" else "created_at"
        items.sort(key=lambda m: (m[key], m["id"]), reverse=q.get("sort", "desc") == "desc")
        return self._page(request, items)

    def _create_mr(self, request: Request, pid: str) -> Reply:
        source = self._find_project(pid)
        if source is None:
            return Reply(404, {"message": "404 Project Not Found"})
        data = request.json()
        for name in ("source_branch", "target_branch", "title"):
            if not data.get(name):
                return Reply(400, {"error": f"{name} is missing"})
        target = self._find_project(str(data.get("target_project_id", source.id)))
        if target is None:
            return Reply(404, {"message": "404 Project Not Found"})
        if target.id != source.id and source.forked_from != target.id:
            return Reply(400, {"message": ["Validate fork Source project is not a fork of target"]})
        for mr in target.mrs:
            if (
                mr["state"] == "opened"
                and mr["source_project_id"] == source.id
                and mr["source_branch"] == data["source_branch"]
                and mr["target_branch"] == data["target_branch"]
            ):
                return Reply(
                    409,
                    {
                        "message": [
                            "Another open merge request already exists for this source "
                            f"branch: !{mr['iid']}"
                        ]
                    },
                )
        now = self._now()
        mr = {
            "id": next(self._ids),
            "iid": len(target.mrs) + 1,
            "project_id": target.id,
            "title": data["title"],
            "description": data.get("description", ""),
            "state": "opened",
            "created_at": now,
            "updated_at": now,
            "target_branch": data["target_branch"],
            "source_branch": data["source_branch"],
            "source_project_id": source.id,
            "target_project_id": target.id,
            "author": BOT,
            "merge_status": "checking",
            "sha": None,
        }
        mr["web_url"] = f"{request.base}{self.prefix}/{target.path}/-/merge_requests/{mr['iid']}"
        self._set_title(mr, data["title"])
        target.mrs.append(mr)
        return Reply(201, mr)

    def _update_mr(self, request: Request, pid: str, iid: str) -> Reply:
        mr = self._find_mr(pid, iid)
        if mr is None:
            return Reply(404, {"message": "404 Not found"})
        data = request.json()
        if "title" in data:
            self._set_title(mr, data["title"])
        if "description" in data:
            mr["description"] = data["description"]
        event = data.get("state_event")
        if event == "close" and mr["state"] == "opened":
            mr["state"] = "closed"
        elif event == "reopen" and mr["state"] == "closed":
            mr["state"] = "opened"
        mr["updated_at"] = self._now()
        return Reply(200, mr)

    def _list_notes(self, request: Request, pid: str, iid: str) -> Reply:
        if self._find_mr(pid, iid) is None:
            return Reply(404, {"message": "404 Not found"})
        items = list(self._notes(self.project_id(pid), int(iid)))
        desc = request.query.get("sort", "desc") == "desc"
        items.sort(key=lambda n: n["id"], reverse=desc)
        return self._page(request, items)

    def _create_note(self, request: Request, pid: str, iid: str) -> Reply:
        if self._find_mr(pid, iid) is None:
            return Reply(404, {"message": "404 Not found"})
        body = request.json().get("body", "")
        if not body:
            return Reply(400, {"error": "body is missing"})
        if len(body) > self.note_limit:
            return self._too_long()
        note = self._note(body, BOT)
        self._notes(self.project_id(pid), int(iid)).append(note)
        return Reply(201, note)

    def _edit_note(self, request: Request, pid: str, iid: str, nid: str) -> Reply:
        note = self._find_note(pid, iid, nid)
        if note is None:
            return Reply(404, {"message": "404 Note Not Found"})
        if note["author"]["id"] != BOT["id"]:
            return Reply(403, {"message": "403 Forbidden"})
        body = request.json().get("body", "")
        if len(body) > self.note_limit:
            return self._too_long()
        note["body"] = body
        note["updated_at"] = self._now()
        return Reply(200, note)

    def _delete_note(self, request: Request, pid: str, iid: str, nid: str) -> Reply:
        note = self._find_note(pid, iid, nid)
        if note is None:
            return Reply(404, {"message": "404 Note Not Found"})
        if note["author"]["id"] != BOT["id"]:
            return Reply(403, {"message": "403 Forbidden"})
        self._notes(self.project_id(pid), int(iid)).remove(note)
        return Reply(204)

    def _create_status(self, request: Request, pid: str, sha: str) -> Reply:
        project = self._find_project(pid)
        if project is None:
            return Reply(404, {"message": "404 Project Not Found"})
        data = request.json()
        state = data.get("state")
        if state not in ("pending", "running", "success", "failed", "canceled"):
            return Reply(400, {"error": "state does not have a valid value"})
        name = data.get("name") or data.get("context") or "default"
        history = self.statuses.setdefault((project.id, sha), [])
        latest = next((s for s in reversed(history) if s["name"] == name), None)
        if latest is not None and latest["status"] == state:
            return Reply(400, {"message": f"Cannot transition status via :{state} from :{state}"})
        status = {
            "id": next(self._ids),
            "sha": sha,
            "ref": None,
            "status": state,
            "name": name,
            "target_url": data.get("target_url"),
            "description": data.get("description"),
            "created_at": self._now(),
            "allow_failure": False,
            "author": BOT,
        }
        history.append(status)
        return Reply(201, status)

    def _list_statuses(self, request: Request, pid: str, sha: str) -> Reply:
        project = self._find_project(pid)
        if project is None:
            return Reply(404, {"message": "404 Project Not Found"})
        history = self.statuses.get((project.id, sha), [])
        name = request.query.get("name")
        items = [s for s in history if name is None or s["name"] == name]
        if request.query.get("all") not in ("true", "1"):
            latest: dict[str, JSON] = {}
            for s in items:
                latest[s["name"]] = s
            items = list(latest.values())
        desc = request.query.get("sort", "asc") == "desc"
        items.sort(key=lambda s: s["id"], reverse=desc)
        return self._page(request, items)

    def add_status(self, project: str, sha: str, name: str, state: str, **extra: Any) -> None:
        """A status set by CI (a pipeline job) rather than by the bot."""
        status = {"id": next(self._ids), "sha": sha, "status": state, "name": name}
        status.update({"allow_failure": False, "description": None, "target_url": None})
        status.update(extra)
        self.statuses.setdefault((self.project(project).id, sha), []).append(status)

    # --- internals ------------------------------------------------------------------------

    def project_id(self, ref: str) -> int:
        project = self._find_project(ref)
        assert project is not None
        return project.id

    def _find_project(self, ref: str) -> Project | None:
        try:
            return self.project(ref)
        except KeyError:
            return None

    def _find_mr(self, pid: str, iid: str) -> dict[str, JSON] | None:
        project = self._find_project(pid)
        if project is None:
            return None
        return next((m for m in project.mrs if m["iid"] == int(iid)), None)

    def _find_note(self, pid: str, iid: str, nid: str) -> dict[str, JSON] | None:
        if self._find_mr(pid, iid) is None:
            return None
        notes = self._notes(self.project_id(pid), int(iid))
        return next((n for n in notes if n["id"] == int(nid)), None)

    def _notes(self, pid: int, iid: int) -> list[dict[str, JSON]]:
        return self.notes.setdefault((pid, iid), [])

    def _note(self, body: str, author: JSON) -> dict[str, JSON]:
        now = self._now()
        return {
            "id": next(self._ids),
            "type": None,
            "body": body,
            "author": author,
            "created_at": now,
            "updated_at": now,
            "system": False,
            "noteable_type": "MergeRequest",
            "resolvable": False,
        }

    def _too_long(self) -> Reply:
        return Reply(
            400, {"message": {"note": [f"is too long (maximum is {self.note_limit} characters)"]}}
        )

    def _now(self) -> str:
        # Strictly increasing timestamps: ordering by created_at is then stable in tests.
        return f"2026-01-01T00:00:00.{next(self._ids):06d}Z"

    @staticmethod
    def _set_title(mr: dict[str, JSON], title: str) -> None:
        mr["title"] = title
        mr["draft"] = mr["work_in_progress"] = title.strip().lower().startswith(_DRAFT)

    def _project_json(self, request: Request, project: Project) -> dict[str, JSON]:
        web = f"{request.base}{self.prefix}/{project.path}"
        data: dict[str, JSON] = {
            "id": project.id,
            "name": project.path.rsplit("/", 1)[-1],
            "path": project.path.rsplit("/", 1)[-1],
            "path_with_namespace": project.path,
            "namespace": {"full_path": project.path.rsplit("/", 1)[0]},
            "default_branch": project.default_branch,
            "web_url": web,
            "http_url_to_repo": web + ".git",
        }
        if project.forked_from is not None:
            parent = self.projects[project.forked_from]
            data["forked_from_project"] = {"id": parent.id, "path_with_namespace": parent.path}
        return data

    def _page(self, request: Request, items: list[JSON]) -> Reply:
        chunk, page, last, per_page = self.page_of(request, items, default=20)
        headers = {
            "Link": ", ".join(self.page_links(request, page, last, per_page)),
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(last),
            "X-Next-Page": str(page + 1) if page < last else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        return Reply(200, chunk, headers)
