"""The web app: status page, status JSON, metrics, health, and the forges' webhooks.

Starlette rather than FastAPI: six routes with hand-checked inputs need neither request
models nor OpenAPI, and Starlette is what FastAPI runs on anyway, with fewer dependencies.
Every route only reads the service's state or asks it for a pass; none runs git.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.config import Config
from bot.serve import hooks, page
from bot.serve.hooks import Forge
from bot.serve.scheduler import Service

log = logging.getLogger(__name__)

_PAGE_HEADERS = {
    # The page has no script, no frame and no form: say so to the browser.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def create_app(
    service: Service,
    config: Config,
    *,
    secrets: dict[Forge, str | None],
    max_body: int = hooks.MAX_BODY,
) -> Starlette:
    """The app over `service`. `secrets`: each forge's webhook secret; a forge without one
    has its hook refused (404: not enabled here)."""
    projects, locations = hooks.watched(config)
    trees = sorted(config.trees)
    remotes = [
        ("xsa" if len(trees) == 1 else f"xsa-{tree}", config.mirror_of(tree)) for tree in trees
    ]

    async def index(request: Request) -> Response:
        html = page.render(
            service.state.status,
            service.last_pass,
            running_since=service.running_since,
            remotes=remotes,
            namespace=config.namespace,
        )
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    async def status_json(request: Request) -> Response:
        status = service.state.status
        if status is None:
            return JSONResponse({"error": "no pass has completed yet"}, status_code=503)
        return JSONResponse(status.to_json())

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        if service.ready.is_set():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("no pass has completed since start\n", status_code=503)

    async def hook(request: Request, forge: Forge) -> Response:
        def answer(outcome: str, status: int, message: str) -> Response:
            service.metrics.hooks.labels(forge, outcome).inc()
            return PlainTextResponse(message + "\n", status_code=status)

        secret = secrets.get(forge)
        if secret is None:
            return answer("disabled", 404, f"{forge} webhooks are not enabled here")
        try:
            body = await _read_body(request, max_body)
        except BodyTooLarge:
            return answer("too-large", 413, f"body larger than {max_body} bytes")
        if forge == "gitlab":
            verdict = hooks.verify_gitlab(request.headers.get("x-gitlab-token"), secret)
        else:
            verdict = hooks.verify_github(request.headers.get("x-hub-signature-256"), body, secret)
        if verdict.status:
            log.warning("%s webhook refused: %s", forge, verdict.message)
            return answer("refused", verdict.status, verdict.message)
        if forge == "github" and request.headers.get("x-github-event") == "ping":
            return answer("ignored", 200, "pong")
        try:
            payload: Any = json.loads(body)
        except ValueError:
            return answer("invalid", 400, "the body is not JSON")
        event = hooks.event_of(forge, request.headers, payload)
        if event is None:
            return answer("ignored", 200, "ignored: not a push, tag or merge request event")
        if not hooks.is_watched(forge, payload, projects, locations):
            return answer("ignored", 200, "ignored: not a repository this bot watches")
        started = service.request()
        log.info("%s webhook (%s): pass %s", forge, event, "requested" if started else "joined")
        return answer("accepted", 202, "pass requested" if started else "pass already requested")

    async def gitlab(request: Request) -> Response:
        return await hook(request, "gitlab")

    async def github(request: Request) -> Response:
        return await hook(request, "github")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/status.json", status_json),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/hooks/gitlab", gitlab, methods=["POST"]),
            Route("/hooks/github", github, methods=["POST"]),
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn's server, with SIGTERM and SIGINT also stopping the service, and without
    re-raising the signal after shutdown (which would end the process with it, not 0)."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self._service = service

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGTERM, signal.SIGINT)
        original = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        log.warning("%s: stopping after the running pass", signal.Signals(sig).name)
        self._service.stopping.set()  # the running pass stops at its next step
        self.should_exit = True


def run(app: Starlette, service: Service, host: str, port: int, *, verbose: bool) -> None:
    """Serve until SIGTERM or SIGINT, with the scheduler running; then let the running pass
    end (or stop it before its push) and return."""
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            access_log=verbose,
            log_level="info" if verbose else "warning",
            server_header=False,
            timeout_graceful_shutdown=10,
        ),
        service,
    )
    service.start()
    try:
        server.run()
    finally:
        service.stop()
