"""A tiny routed WSGI server on 127.0.0.1 for the fake forges, run in a thread.

It records every request, serves scripted faults (a 429 with Retry-After, 500s, a 403) before
routing, and answers any request it has no route for with a 404 while recording it in
`unknown`: the fixtures assert at teardown that nothing unknown was asked, so an adapter that
starts using a new endpoint fails its tests until the fake learns it.
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

JSON = Any


@dataclass
class Request:
    method: str
    path: str  # raw (still percent-encoded), so `group%2Fproject` stays one segment
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base: str  # scheme://host:port of the server, for the URLs put into answers

    def json(self) -> JSON:
        if not self.body:
            return {}
        return json.loads(self.body)


@dataclass
class Reply:
    status: int
    body: JSON = None  # JSON-able, or str for a plain-text body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    reply: Reply
    times: int


Handler = Callable[..., Reply]
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class _Handler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        env["RAW_PATH"] = self.path.split("?", 1)[0]  # wsgiref decodes PATH_INFO; keep %2F
        return env

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


class FakeServer:
    """Routes, recording, scripted faults. Subclasses register their endpoints."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self.unknown: list[str] = []
        self.errors: list[str] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- setup ----------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """`pattern` is a regex on the raw path; named groups are passed unquoted."""
        self.routes.append((method, re.compile(pattern + "$"), handler))

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: JSON = None,
    ) -> None:
        """Answer the next `times` requests matching `method` and the `path` regex with
        `status` instead of serving them."""
        reply = Reply(status, body if body is not None else self.error_body(status), headers or {})
        self._faults.append(Fault(method, re.compile(path), reply, times))

    def clear_faults(self) -> None:
        self._faults.clear()

    def error_body(self, status: int) -> JSON:
        return {"message": f"{status} {_REASONS.get(status, 'Error')}"}

    def start(self) -> FakeServer:
        self._httpd = make_server("127.0.0.1", 0, self, handler_class=_Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def origin(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_port}"

    # --- what tests look at ---------------------------------------------------------------

    def calls(self, method: str, path: str = "") -> list[Request]:
        """Recorded requests with `method` whose raw path matches the regex `path`."""
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    # --- helpers for the fakes --------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        raise NotImplementedError

    @staticmethod
    def page_links(request: Request, page: int, last: int, per_page: int) -> list[str]:
        def link(n: int, rel: str) -> str:
            query = dict(request.query, page=str(n), per_page=str(per_page))
            return f'<{request.base}{request.path}?{urlencode(query)}>; rel="{rel}"'

        links = []
        if page > 1:
            links.append(link(page - 1, "prev"))
        if page < last:
            links.append(link(page + 1, "next"))
        links += [link(1, "first"), link(last, "last")]
        return links

    @staticmethod
    def page_of(
        request: Request, items: list[JSON], default: int
    ) -> tuple[list[JSON], int, int, int]:
        per_page = min(int(request.query.get("per_page", default)), 100)
        page = max(int(request.query.get("page", 1)), 1)
        last = max(1, -(-len(items) // per_page))
        return items[(page - 1) * per_page : page * per_page], page, last, per_page

    # --- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = Request(
            method=environ["REQUEST_METHOD"],
            path=environ["RAW_PATH"],
            query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
            headers={
                k[5:].replace("_", "-").lower(): v
                for k, v in environ.items()
                if k.startswith("HTTP_")
            },
            body=environ["wsgi.input"].read(length) if length else b"",
            base=f"http://{environ['HTTP_HOST']}",
        )
        if environ.get("CONTENT_TYPE"):
            request.headers["content-type"] = environ["CONTENT_TYPE"]
        with self._lock:
            self.requests.append(request)
            reply = self._dispatch(request)
        return self._respond(reply, start_response)

    def _dispatch(self, request: Request) -> Reply:
        for fault in self._faults:
            if (
                fault.times > 0
                and fault.method == request.method
                and fault.path.search(request.path)
            ):
                fault.times -= 1
                return fault.reply
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                if not self.authorized(request):
                    return self.unauthorized()
                try:
                    args = {k: unquote(v) for k, v in match.groupdict().items()}
                    return handler(request, **args)
                except Exception:
                    self.errors.append(traceback.format_exc())
                    return Reply(500, {"message": "500 Internal Server Error"})
        self.unknown.append(f"{request.method} {request.path}?{urlencode(request.query)}")
        return Reply(404, {"message": "fake: no such endpoint"})

    @staticmethod
    def _respond(reply: Reply, start_response: Callable[..., Any]) -> list[bytes]:
        headers = dict(reply.headers)
        if reply.body is None or reply.status == 204:
            payload = b""
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
            headers.setdefault("Content-Type", "text/plain")
        else:
            payload = json.dumps(reply.body).encode()
            headers.setdefault("Content-Type", "application/json")
        headers["Content-Length"] = str(len(payload))
        status = f"{reply.status} {_REASONS.get(reply.status, 'Status')}"
        start_response(status, list(headers.items()))
        return [payload]
