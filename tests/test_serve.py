"""`xsabot serve`: the real server on a free 127.0.0.1 port, talked to over HTTP.

The pass is the real reconcile where the test is about what it shows (a blocked XSA and its
merge request, the mirror after SIGTERM); where the test counts passes (webhook bursts, bad
secrets), the service gets a pass function that counts, through its constructor.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from bot.app.reconcile import reconcile
from bot.app.status import status
from bot.config import Config, load_config, with_overrides
from bot.core.ports import Progress
from bot.core.reports import BranchReport, PassReport, StatusReport
from bot.errors import UsageError
from bot.redact import redact
from bot.serve import history
from bot.serve.app import create_app
from bot.serve.hooks import MAX_BODY, github_signature, load_secret
from bot.serve.scheduler import Service
from tests.conftest import Bot
from tests.gitrepo import RepoBuilder, XenLike
from tests.manifests import manifest

ROOT = Path(__file__).resolve().parent.parent
GITLAB_SECRET = "gl-secret-for-tests"
GITHUB_SECRET = "gh-secret-for-tests"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


class Server:
    """The web app and the scheduler of one `Service`, uvicorn in a thread."""

    def __init__(self, service: Service, config: Config) -> None:
        self.service = service
        self.port = _free_port()
        app = create_app(
            service, config, secrets={"gitlab": GITLAB_SECRET, "github": GITHUB_SECRET}
        )
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning"
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Server:
        self.service.start()
        self._thread.start()
        _wait(lambda: self._server.started)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.service.stop()

    def request(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


class CountingPass:
    """A pass that counts its runs; `gate` (when cleared) holds each run until set."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, progress: Progress) -> PassReport:
        self.runs += 1
        with progress.step("counting"):
            self.gate.wait(30)
        return PassReport(branches=(BranchReport(manifest="4.19", action="none", path="x"),))


def _config(tmp_path: Path, **trees: str) -> Config:
    upstream = trees.get("upstream", "https://gitlab.example.org/xen-project/xen.git")
    return with_overrides(
        load_config(None, cwd=tmp_path),
        manifests=tmp_path / "manifests",
        state=tmp_path / "state",
        upstreams={"xen": upstream},
    )


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Server, CountingPass]]:
    counter = CountingPass()
    service = Service(
        counter,
        lambda: StatusReport(branches=(), proposals=()),
        tmp_path / "state",
        interval=3600,
        jitter=0,
        hook_delay=1.5,
    )
    with Server(service, _config(tmp_path)) as server:
        _wait(service.ready.is_set)  # the pass at start
        assert counter.runs == 1
        yield server, counter


def _gitlab_push(project: str = "xen-project/xen") -> bytes:
    return json.dumps(
        {
            "object_kind": "push",
            "ref": "refs/heads/stable-4.19",
            "project": {
                "path_with_namespace": project,
                "git_http_url": f"https://gitlab.example.org/{project}.git",
            },
        }
    ).encode()


def _github_push(full_name: str = "xen-project/xen") -> bytes:
    return json.dumps(
        {
            "ref": "refs/tags/RELEASE-4.19.6",
            "repository": {
                "full_name": full_name,
                "clone_url": f"https://gitlab.example.org/{full_name}.git",
            },
        }
    ).encode()


def _gitlab(server: Server, body: bytes, token: str | None, event: str = "Push Hook") -> int:
    headers = {"X-Gitlab-Event": event, "Content-Type": "application/json"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return server.request("/hooks/gitlab", body, headers)[0]


def _github(server: Server, body: bytes, signature: str | None, event: str = "push") -> int:
    headers = {"X-GitHub-Event": event, "Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return server.request("/hooks/github", body, headers)[0]


def _too_large(server: Server, *, chunked: bool) -> int:
    """A body one byte over the cap: declared (refused before it is sent, as curl waits for
    `100 Continue`), or chunked (refused once the cap is passed)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/hooks/gitlab")
    for name, value in (("X-Gitlab-Token", GITLAB_SECRET), ("X-Gitlab-Event", "Push Hook")):
        conn.putheader(name, value)
    size = MAX_BODY + 1
    if chunked:
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for start in range(0, size, 1 << 16):
            piece = b"x" * min(1 << 16, size - start)
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    else:
        conn.putheader("Content-Length", str(size))
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def _metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, text = server.request("/metrics")
    assert code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_missing_or_wrong_secret_is_refused_and_asks_for_no_pass(
    counted: tuple[Server, CountingPass],
) -> None:
    server, counter = counted
    body = _gitlab_push()
    assert _gitlab(server, body, None) == 401
    assert _gitlab(server, body, "") == 401
    assert _gitlab(server, body, "wrong") == 403
    assert _gitlab(server, body, GITLAB_SECRET + "x") == 403
    gh = _github_push()
    assert _github(server, gh, None) == 401
    assert _github(server, gh, "sha256=" + "0" * 64) == 403
    assert _github(server, gh, github_signature(gh, "another secret")) == 403
    assert _github(server, gh, github_signature(gh + b" ", GITHUB_SECRET)) == 403  # other body
    time.sleep(server.service.hook_delay + 0.5)
    assert counter.runs == 1
    refused = _metrics(server)
    assert refused[("xsabot_webhooks_total", (("forge", "gitlab"), ("outcome", "refused")))] == 4
    assert refused[("xsabot_webhooks_total", (("forge", "github"), ("outcome", "refused")))] == 4

    assert _github(server, gh, github_signature(gh, GITHUB_SECRET)) == 202  # the right one does
    _wait(lambda: counter.runs == 2)


def test_events_of_other_repositories_or_kinds_and_large_bodies_ask_for_no_pass(
    counted: tuple[Server, CountingPass],
) -> None:
    server, counter = counted
    assert _gitlab(server, _gitlab_push("someone/else"), GITLAB_SECRET) == 200
    assert _gitlab(server, _gitlab_push(), GITLAB_SECRET, event="Issue Hook") == 200
    assert _gitlab(server, b"not json", GITLAB_SECRET) == 400
    assert _too_large(server, chunked=False) == 413
    assert _too_large(server, chunked=True) == 413
    branch = json.dumps({"ref_type": "branch", "repository": {"full_name": "xen-project/xen"}})
    assert (
        _github(server, branch.encode(), github_signature(branch.encode(), GITHUB_SECRET), "create")
        == 200
    )
    time.sleep(server.service.hook_delay + 0.5)
    assert counter.runs == 1
    # The upstream's tag event, by its clone URL alone, is one the bot watches.
    tag = json.dumps(
        {"project": {"git_ssh_url": "git@gitlab.example.org:xen-project/xen.git"}}
    ).encode()
    assert _gitlab(server, tag, GITLAB_SECRET, event="Tag Push Hook") == 202
    _wait(lambda: counter.runs == 2)


def test_fifty_hooks_in_a_second_make_one_pass_and_a_hook_during_a_pass_one_more(
    counted: tuple[Server, CountingPass],
) -> None:
    server, counter = counted
    gl, gh = _gitlab_push(), _github_push()
    started = time.monotonic()
    codes = [
        _gitlab(server, gl, GITLAB_SECRET)
        if i % 2
        else _github(server, gh, github_signature(gh, GITHUB_SECRET))
        for i in range(50)
    ]
    assert time.monotonic() - started < 1.0, "the burst took longer than a second"
    assert set(codes) == {202}
    _wait(lambda: counter.runs == 2)
    time.sleep(server.service.hook_delay + 1)
    assert counter.runs == 2

    counter.gate.clear()  # the next pass runs until the gate opens
    assert _gitlab(server, gl, GITLAB_SECRET) == 202
    _wait(lambda: counter.runs == 3)
    for _ in range(10):
        assert _gitlab(server, gl, GITLAB_SECRET) == 202
    counter.gate.set()
    _wait(lambda: counter.runs == 4)  # run again once after
    time.sleep(server.service.hook_delay + 1)
    assert counter.runs == 4
    passes = _metrics(server)[("xsabot_passes_total", (("result", "ok"),))]
    assert passes == 4


@pytest.fixture
def repo_bot(bot: Bot, tmp_path: Path) -> tuple[Bot, RepoBuilder]:
    manifests_repo = RepoBuilder(tmp_path / "manifests-repo")
    bot.manifests = manifests_repo.path / "manifests"
    return bot, manifests_repo


def test_the_page_the_json_and_the_metrics_show_a_blocked_xsa_and_its_merge_request(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    text = manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]))
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": text})
    config = with_overrides(
        load_config(None, cwd=tmp_path),
        manifests=bot.manifests,
        state=bot.state,
        upstreams={"xen": str(bot.upstream)},
        mirrors={"xen": str(bot.mirror)},
    )
    service = Service(
        lambda progress: reconcile(config, progress).report,
        lambda: status(config),
        config.state,
        interval=3600,
        jitter=0,
    )
    with Server(service, config) as server:
        _wait(service.ready.is_set, timeout=120)
        code, page = server.request("/")
        assert code == 200
        code, body = server.request("/status.json")
        assert code == 200
        metrics = _metrics(server)
        assert server.request("/readyz")[0] == 200
        assert server.request("/healthz")[0] == 200

    data = json.loads(body)
    assert data == json.loads(bot("status", "--json").out)  # what `xsabot status` reads
    [branch] = data["branches"]
    assert branch["applied"] == [1]
    [blocked] = branch["blocked"]
    assert (blocked["xsa"], blocked["reason"]) == (2, "conflict")
    [proposal] = data["proposals"]
    assert proposal["branch"] == "xsabot/4.19/xsa-2"

    assert '<a href="https://xenbits.xen.org/xsa/advisory-1.html">XSA-1</a>' in page
    blocked_line = next(line for line in page.splitlines() if "advisory-2.html" in line)
    assert "conflict" in blocked_line
    assert f"!{proposal['id']}" in blocked_line and proposal["title"] in blocked_line
    assert branch["tip"] in page
    assert "git config remote.xsa.fetch &#x27;+refs/heads/xsa/*:refs/remotes/xsa/*&#x27;" in page
    assert "Last pass:" in page and "blocked" in page

    assert metrics[("xsabot_blocked_xsas", (("branch", "xsa/4.19"),))] == 1
    assert metrics[("xsabot_open_proposals", ())] == 1
    assert metrics[("xsabot_passes_total", (("result", "blocked"),))] == 1
    assert metrics[("xsabot_picks_total", ())] == 1
    assert metrics[("xsabot_conflicts_total", ())] == 1
    assert metrics[("xsabot_pass_duration_seconds_count", ())] == 1
    assert ("xsabot_notifications_total", (("outcome", "failed"),)) in metrics

    # A restart shows the same status and the last pass at once, before any new pass.
    again = Service(lambda p: PassReport(), lambda: status(config), config.state)
    assert again.state.status is not None and again.state.status.to_json() == data
    assert again.last_pass is not None and again.last_pass.result == "blocked"


def test_the_page_escapes_what_it_shows(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    report = StatusReport(
        branches=(
            BranchReport(
                manifest="4.19", action="none", path="x", branch="xsa/4.19", problems=(evil,)
            ),
        ),
        proposals=(),
    )
    service = Service(lambda p: PassReport(), lambda: report, tmp_path / "state", jitter=0)
    with Server(service, _config(tmp_path)) as server:
        _wait(service.ready.is_set)
        _, page = server.request("/")
    assert evil not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<script" not in page


def test_the_kept_state_survives_a_kill_in_the_middle_of_writing(tmp_path: Path) -> None:
    path = history.state_file(tmp_path)
    code = f"""
import datetime, pathlib, sys
sys.path.insert(0, {str(ROOT)!r})
from bot.serve import history
state = history.ServiceState()
n = 0
while True:
    n += 1
    record = history.PassRecord(
        started=datetime.datetime.now(datetime.UTC), seconds=n, trigger="hook", result="ok",
        errors=("x" * 5000,),
    )
    state = state.with_pass(record, None, ["xsa/4.19"])
    history.save(pathlib.Path({str(path)!r}), state)
"""
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", code])
        _wait(path.exists)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kept = history.load(path)  # never half a file
        assert kept.passes, "the kept state was lost"
        assert len(kept.passes) <= history.HISTORY_LIMIT
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # nothing left behind
    path.write_text('{"passes": [')  # a file damaged otherwise: a fresh start, not a crash
    assert history.load(path) == history.ServiceState()


def test_sigterm_during_a_pass_exits_0_with_the_mirror_consistent(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    assert bot("reconcile").status == 0
    old = subprocess.run(
        ["git", "rev-parse", "refs/heads/xsa/4.19"],
        cwd=bot.mirror,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "serve",
            "-v",
            "--listen",
            f"127.0.0.1:{port}",
            "--manifests",
            str(bot.manifests),
            "--state",
            str(bot.state),
            "--upstream",
            f"xen={bot.upstream}",
            "--mirror",
            f"xen={bot.mirror}",
            "--check",
            "xen=sleep 3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "building 4.19" in line:
                break
        else:
            raise AssertionError("".join(seen))
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(seen) + out
    assert proc.returncode == 0, log
    assert "xsabot serve: stopped" in log
    fsck = subprocess.run(
        ["git", "fsck", "--strict"], cwd=bot.mirror, capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    tip = subprocess.run(
        ["git", "rev-parse", "refs/heads/xsa/4.19"],
        cwd=bot.mirror,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    [last] = history.load(history.state_file(bot.state)).passes
    if last.result == "abandoned":
        assert tip == old, log  # stopped before its push: nothing of it published
    else:  # the pass ended first: all of it published
        assert last.result == "ok" and tip != old, log
    assert last.result == "abandoned", f"the pass outran SIGTERM: {log}"
    assert bot("reconcile").status == 0  # the next pass publishes what was left


class DevTools:
    """Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
    NUL-terminated JSON on fds 3 and 4), so no WebSocket client is needed."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire() -> None:  # in the child: its fd 3 reads our commands, fd 4 answers
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            preexec_fn=wire,
            pass_fds=(3, 4),  # kept open in the child once `wire` made them
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, object]] = []

    def call(self, method: str, session: str | None = None, **params: object) -> dict:
        self._id += 1
        message: dict[str, object] = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > end:
                raise AssertionError(f"no {method}")
            self.events.append(self._next())

    def _next(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise AssertionError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(raw))

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


WIDEST = """Math.max(0, ...[...document.querySelectorAll('body *')].map(e => {
  const r = e.getBoundingClientRect();
  const clip = getComputedStyle(e.parentElement).overflowX;
  return clip === 'auto' || clip === 'hidden' || clip === 'scroll' ? 0 : r.right;
}))"""


def test_the_page_fits_a_phone_in_headless_chromium(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, tmp_path: Path
) -> None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    bot, repo = repo_bot
    text = manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]), (3, ["xsa3a", "xsa3b"]), (4, ["xsa4"]))
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": text})
    config = with_overrides(
        load_config(None, cwd=tmp_path),
        manifests=bot.manifests,
        state=bot.state,
        upstreams={"xen": str(bot.upstream)},
        mirrors={"xen": str(bot.mirror)},
    )
    service = Service(
        lambda progress: reconcile(config, progress).report, lambda: status(config), config.state
    )
    with Server(service, config) as server:
        _wait(service.ready.is_set, timeout=120)
        browser = DevTools(binary, tmp_path / "chromium-profile")
        try:
            target = browser.call("Target.createTarget", url="about:blank")["targetId"]
            session = browser.call("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            browser.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=375,
                height=800,
                deviceScaleFactor=1,
                mobile=True,
            )
            for domain in ("Page", "Runtime", "Log"):
                browser.call(f"{domain}.enable", session)
            browser.call("Page.navigate", session, url=f"http://127.0.0.1:{server.port}/")
            browser.wait_event("Page.loadEventFired")
            measured = browser.call(
                "Runtime.evaluate",
                session,
                expression=f"[document.documentElement.scrollWidth, innerWidth, {WIDEST}, "
                "document.querySelectorAll('a[href*=\"advisory-2\"]').length]",
                returnByValue=True,
            )["result"]["value"]
            shot = browser.call("Page.captureScreenshot", session, format="png")["data"]
        finally:
            browser.close()
    (tmp_path / "status-375.png").write_bytes(base64.b64decode(shot))
    scroll_width, viewport, widest, links = measured
    assert viewport == 375
    assert links >= 1  # the page rendered the blocked XSA
    assert scroll_width <= viewport, f"the page scrolls sideways: {scroll_width}px"
    assert widest <= viewport, f"an element reaches {widest}px in a {viewport}px viewport"
    errors = [
        e
        for e in browser.events
        if e.get("method") in ("Runtime.exceptionThrown", "Log.entryAdded")
        and (
            e.get("method") == "Runtime.exceptionThrown" or e["params"]["entry"]["level"] == "error"
        )  # type: ignore[index]
    ]
    errors += [
        e
        for e in browser.events
        if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"  # type: ignore[index]
    ]
    assert errors == []


def test_the_periodic_pass_runs_without_any_hook(tmp_path: Path) -> None:
    counter = CountingPass()
    service = Service(
        counter,
        lambda: StatusReport(branches=(), proposals=()),
        tmp_path / "state",
        interval=1,
        jitter=0.2,
    )
    with Server(service, _config(tmp_path)):
        _wait(lambda: counter.runs >= 3, timeout=20)
    kept = history.load(history.state_file(tmp_path / "state")).passes
    assert [p.trigger for p in kept[:2]] == ["start", "schedule"]


def test_a_webhook_secret_from_a_file_is_read_and_never_shown(tmp_path: Path) -> None:
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text("from-a-file-0123\n")
    env = {"XSABOT_GITLAB_WEBHOOK_SECRET_FILE": str(secret_file)}
    assert load_secret("gitlab", env) == "from-a-file-0123"
    assert redact("token from-a-file-0123 leaked") == "token *** leaked"
    assert load_secret("github", env) is None  # not set: that forge's hooks are refused
    with pytest.raises(
        UsageError, match="XSABOT_GITHUB_WEBHOOK_SECRET: the webhook secret is empty"
    ):
        load_secret("github", {"XSABOT_GITHUB_WEBHOOK_SECRET": ""})
    with pytest.raises(UsageError, match="XSABOT_GITLAB_WEBHOOK_SECRET_FILE: cannot read"):
        load_secret("gitlab", {"XSABOT_GITLAB_WEBHOOK_SECRET_FILE": str(tmp_path / "none")})


@pytest.mark.parametrize("listen", ["8080", "example.org:80", "127.0.0.1:0", "127.0.0.1:http"])
def test_serve_refuses_a_listen_address_it_cannot_use(
    listen: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli.main import main

    assert main(["serve", "--listen", listen]) == 2
    assert "--listen" in capsys.readouterr().err


def test_the_page_says_which_xsa_waits_for_which_and_links_only_web_urls() -> None:
    from bot.core.reports import BlockedXsa, OpenProposal
    from bot.serve.page import render

    report = StatusReport(
        branches=(
            BranchReport(
                manifest="4.19",
                action="none",
                path="x",
                branch="xsa/4.19",
                blocked=(
                    BlockedXsa(xsa=3, commit=None, paths=(), reason="conflict"),
                    BlockedXsa(xsa=4, commit=None, paths=(), reason="waits-for", waits_for=(3,)),
                ),
            ),
        ),
        proposals=(
            OpenProposal(
                id=7, branch="xsabot/4.19/xsa-3", title="t", draft=False, url="javascript:x"
            ),
        ),
    )
    page = render(
        report,
        None,
        running_since=None,
        remotes=[("xsa", "https://bot:tok3n@git.example.org/xsa.git")],
        namespace="xsa/",
    )
    waits = '<a href="https://xenbits.xen.org/xsa/advisory-4.html">XSA-4</a> waits for <a'
    assert waits in page and "advisory-3.html" in page
    assert "fix proposed in !7" in page and "javascript:" not in page
    assert "tok3n" not in page and "git remote add xsa https://***@git.example.org/xsa.git" in page
