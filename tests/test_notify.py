"""Notifications: a real SMTP server (aiosmtpd) and a real HTTP receiver on 127.0.0.1.

Each pass tells a state change once, whichever process or replica runs it; an unchanged
pass says nothing; a channel that is down is retried on the next pass and counted.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from bot.core.notify import NotifyDoc, Pending, backoff, branch_events, render
from bot.core.reports import BlockedXsa, BranchReport
from tests.conftest import Bot
from tests.gitrepo import RepoBuilder, XenLike
from tests.manifests import manifest

# The test server takes a login without TLS (the bot's STARTTLS is switched off for it).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
ROOT = Path(__file__).resolve().parent.parent
USER = "xsabot-mailer"
PASSWORD = "smtp-pa55-f0r-the-test"
HOOK_SECRET = "hook-s3cret-f0r-the-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """What the SMTP server received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.content if isinstance(envelope.content, bytes) else b""
        self.raw.append(data)
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def take(self) -> list[EmailMessage]:
        taken, self.messages = self.messages, []
        return taken


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.box = Mailbox()
        self.controller: Controller | None = None

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.box.logins.append((data.login, data.password))
        ok = data.login == USER.encode() and data.password == PASSWORD.encode()
        return AuthResult(success=ok)

    def start(self) -> None:
        self.controller = Controller(
            self.box,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.authenticate,
            auth_require_tls=False,
            auth_required=True,
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(_free_port())
    server.start()
    yield server
    server.stop()


class Hooks:
    """A webhook receiver that checks each request's HMAC as a user's would."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.bad: list[str] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                want = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
                got = self.headers.get("X-Xsabot-Signature-256", "")
                if not hmac.compare_digest(want, got):
                    hooks.bad.append(got)
                    self.send_response(401)
                else:
                    data = json.loads(body)
                    data["_delivery"] = self.headers["X-Xsabot-Delivery"]
                    hooks.received.append(data)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    yield receiver
    receiver.close()


@pytest.fixture
def repo_bot(bot: Bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Bot, RepoBuilder]:
    """The bot with its manifests in a git repository (the local forge opens proposals),
    and the SMTP password in the environment."""
    manifests_repo = RepoBuilder(tmp_path / "manifests-repo")
    bot.manifests = manifests_repo.path / "manifests"
    monkeypatch.setenv("XSABOT_TEST_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("XSABOT_TEST_HOOK_SECRET", HOOK_SECRET)
    (tmp_path / "smtp-user").write_text(USER + "\n")
    return bot, manifests_repo


def _config(
    tmp_path: Path,
    *,
    smtp_port: int | None = None,
    hook: str | None = None,
    retry: float = 0,
    extra: str = "",
) -> Path:
    lines = ["notify:", f"  retry_seconds: {retry}"]
    if smtp_port is not None:
        lines += [
            "  email:",
            f'    smtp: "127.0.0.1:{smtp_port}"',
            "    starttls: false",
            "    from: xsabot@xsa.example.org",
            "    to: [xen-devel@lists.example.org]",
            f"    username_file: {tmp_path / 'smtp-user'}",
            "    password_env: XSABOT_TEST_SMTP_PASSWORD",
            "    timeout: 5",
        ]
    if hook is not None:
        lines += ["  webhook:", f"    url: {hook}", "    secret_env: XSABOT_TEST_HOOK_SECRET"]
    path = tmp_path / "xsabot.yaml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def _reconcile(bot: Bot, config: Path, **kw: Path) -> dict[str, Any]:
    run = bot("reconcile", "--json", "--config", str(config), **kw)
    assert PASSWORD not in run.out + run.err and HOOK_SECRET not in run.out + run.err
    assert run.out, run.err
    data: dict[str, Any] = json.loads(run.out)
    data["status"] = run.status
    data["stderr"] = run.err
    return data


def _counts(report: dict[str, Any]) -> dict[str, Any]:
    """The report's notifications per channel, once its totals are checked against them."""
    data: dict[str, Any] = report["notifications"]
    for key in ("sent", "failed", "pending"):
        assert data[key] == sum(c[key] for c in data["channels"].values())
    channels: dict[str, Any] = data["channels"]
    return channels


def _notified(mirror: Path) -> dict[str, Any]:
    text = subprocess.run(
        ["git", "-C", str(mirror), "show", "refs/xsabot/notified:notified.json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data: dict[str, Any] = json.loads(text)
    return data


def _write_notified(mirror: Path, doc: dict[str, Any]) -> None:
    """What another replica's push of the notification document leaves in the mirror."""

    def git(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            ["git", "-C", str(mirror), *args],
            input=stdin,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    blob = git("hash-object", "-w", "--stdin", stdin=json.dumps(doc))
    tree = git("mktree", stdin=f"100644 blob {blob}\tnotified.json\n")
    commit = git(
        "-c", "user.name=b", "-c", "user.email=b@b.example", "commit-tree", tree, "-m", "b"
    )
    git("update-ref", "refs/xsabot/notified", commit)


def _blocking(repo: RepoBuilder, x: XenLike) -> None:
    text = manifest(x, (1, ["xsa1"]), (2, ["xsa2"]))  # XSA-2 conflicts without `prereq`
    repo.commit("4.19: add XSA-2\n", {"manifests/4.19.yaml": text})


def _start(bot: Bot, repo: RepoBuilder, x: XenLike, config: Path, smtp: SmtpServer) -> None:
    """A published branch with XSA-1 (its one `published` email already read)."""
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": manifest(x, (1, ["xsa1"]))})
    first = _reconcile(bot, config)
    assert first["status"] == 0, first
    [mail] = smtp.box.take()
    assert mail["Subject"] == "[xsabot] xsa/4.19: XSA-1 published"


def test_a_block_is_told_once_and_its_recovery_once(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, smtp: SmtpServer, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port)
    _start(bot, repo, xenlike, config, smtp)

    _blocking(repo, xenlike)
    blocked = _reconcile(bot, config)
    assert blocked["status"] == 1
    [proposal] = blocked["proposals"]
    assert proposal["action"] == "open"
    [mail] = smtp.box.take()  # the proposal is named in it, not told apart
    assert mail["Subject"] == "[xsabot] xsa/4.19: XSA-2 blocked"
    body = mail.get_content()
    assert "xsa/4.19 is published without XSA-2:" in body
    assert "XSA-2: conflict in xen/common/sched.c" in body
    assert f"Review the bot's merge request for XSA-2: {proposal['url']}" in body
    assert "Reproduce: xsabot plan" in body
    assert mail["From"] == "xsabot@xsa.example.org"
    assert mail["To"] == "xen-devel@lists.example.org"
    assert mail["Message-ID"].endswith("@xsa.example.org>")
    root = mail["In-Reply-To"]
    assert mail["References"] == root and root.endswith("@xsa.example.org>")
    assert _counts(blocked) == {"email": {"sent": 1, "failed": 0, "pending": 0}}
    assert smtp.box.logins[-1] == (USER.encode(), PASSWORD.encode())

    unchanged = _reconcile(bot, config)
    assert smtp.box.take() == []
    assert _counts(unchanged) == {"email": {"sent": 0, "failed": 0, "pending": 0}}

    repo.repo.git.merge("xsabot/4.19/xsa-2")  # a volunteer merges the proposal
    recovered = _reconcile(bot, config)
    assert recovered["status"] == 0, recovered
    [mail] = smtp.box.take()
    assert mail["Subject"] == "[xsabot] xsa/4.19: recovered"
    assert "Published: XSA-2." in mail.get_content()
    assert mail["In-Reply-To"] == root  # the branch's thread
    assert _counts(_reconcile(bot, config))["email"]["sent"] == 0
    assert smtp.box.take() == []


def test_a_down_smtp_server_is_retried_on_the_next_pass_and_counted(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, smtp: SmtpServer, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port)
    _start(bot, repo, xenlike, config, smtp)
    smtp.stop()

    _blocking(repo, xenlike)
    down = _reconcile(bot, config)
    assert down["status"] == 1  # blocked, not worse: a send never fails a pass
    assert _counts(down) == {"email": {"sent": 0, "failed": 1, "pending": 1}}
    [entry] = _notified(bot.mirror)["outbox"]
    assert entry["attempts"] == 1 and entry["channels"] == ["email"]
    assert entry["last_error"].startswith(f"email: email via 127.0.0.1:{smtp.port}: ")
    assert _notified(bot.mirror)["counts"]["email"]["failed"] == 1

    smtp.start()
    retried = _reconcile(bot, config)
    assert _counts(retried) == {"email": {"sent": 1, "failed": 0, "pending": 0}}
    [mail] = smtp.box.take()
    assert mail["Subject"] == "[xsabot] xsa/4.19: XSA-2 blocked"
    assert down["proposals"][0]["url"] in mail.get_content()  # known when it was first tried
    assert _notified(bot.mirror)["outbox"] == []


def test_backoff_waits_before_a_retry(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, smtp: SmtpServer, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    _start(bot, repo, xenlike, _config(tmp_path, smtp_port=smtp.port), smtp)
    config = _config(tmp_path, smtp_port=smtp.port, retry=3600)
    smtp.stop()
    _blocking(repo, xenlike)
    assert _counts(_reconcile(bot, config))["email"]["failed"] == 1
    smtp.start()
    waiting = _reconcile(bot, config)  # an hour has not passed: not yet
    assert _counts(waiting) == {"email": {"sent": 0, "failed": 0, "pending": 1}}
    assert smtp.box.take() == []


def test_a_restart_sends_nothing_twice(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, smtp: SmtpServer, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port)
    _start(bot, repo, xenlike, config, smtp)
    _blocking(repo, xenlike)
    assert len(_reconcile(bot, config)["proposals"]) == 1
    assert len(smtp.box.take()) == 1

    # A fresh process on the same state dir and mirror: nothing to tell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {"PYTHONPATH": str(ROOT), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    argv = [sys.executable, "-m", "bot", "reconcile", "--json", "--config", str(config)]
    argv += ["--manifests", str(bot.manifests), "--state", str(bot.state)]
    argv += ["--upstream", f"xen={bot.upstream}", "--mirror", f"xen={bot.mirror}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert _counts(json.loads(proc.stdout))["email"]["sent"] == 0
    assert smtp.box.take() == []


def test_a_crash_between_the_push_and_the_send_sends_it_on_the_next_run(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, smtp: SmtpServer, tmp_path: Path
) -> None:
    from bot.app.wiring import Adapters
    from bot.git.publish import push

    bot, repo = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port)
    _start(bot, repo, xenlike, config, smtp)

    def dies_after_publishing(work, mirror, updates, **kw):  # type: ignore[no-untyped-def]
        result = push(work, mirror, updates, **kw)
        if len(updates) > 1:  # the pass's push, not one of the notifications' own
            raise KeyboardInterrupt  # killed right after the record and its news landed
        return result

    bot.adapters = Adapters(push=dies_after_publishing)
    _blocking(repo, xenlike)
    killed = bot("reconcile", "--config", str(config))
    assert killed.status == 2 and "interrupted" in killed.err
    assert smtp.box.take() == []
    [pending] = _notified(bot.mirror)["outbox"]
    assert pending["event"]["kind"] == "blocked" and pending["attempts"] == 0

    bot.adapters = None
    again = _reconcile(bot, config)
    assert _counts(again)["email"]["sent"] == 1
    [mail] = smtp.box.take()
    assert mail["Subject"] == "[xsabot] xsa/4.19: XSA-2 blocked"
    assert _counts(_reconcile(bot, config))["email"]["sent"] == 0
    assert smtp.box.take() == []


def test_two_replicas_with_their_own_state_tell_each_change_once(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, smtp: SmtpServer, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port)
    one, two = tmp_path / "replica-1", tmp_path / "replica-2"
    # One forge for both: the local forge keeps its merge requests under the state dir, so
    # the replicas share that directory (GitLab or GitHub would be shared by nature).
    for replica in (one, two):
        replica.mkdir()
    (one / "proposals").mkdir()
    (two / "proposals").symlink_to(one / "proposals")
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": manifest(xenlike, (1, ["xsa1"]))})
    _reconcile(bot, config, state=one)
    _reconcile(bot, config, state=two)
    assert [m["Subject"] for m in smtp.box.take()] == ["[xsabot] xsa/4.19: XSA-1 published"]

    _blocking(repo, xenlike)
    _reconcile(bot, config, state=two)
    _reconcile(bot, config, state=one)
    _reconcile(bot, config, state=two)
    assert [m["Subject"] for m in smtp.box.take()] == ["[xsabot] xsa/4.19: XSA-2 blocked"]

    repo.repo.git.merge("xsabot/4.19/xsa-2")
    _reconcile(bot, config, state=one)
    _reconcile(bot, config, state=two)
    assert [m["Subject"] for m in smtp.box.take()] == ["[xsabot] xsa/4.19: recovered"]


def test_the_webhook_posts_signed_json(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, hooks: Hooks, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    config = _config(tmp_path, hook=hooks.url)
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": manifest(xenlike, (1, ["xsa1"]))})
    _reconcile(bot, config)
    _blocking(repo, xenlike)
    data = _reconcile(bot, config)
    assert _counts(data) == {"webhook": {"sent": 1, "failed": 0, "pending": 0}}
    assert hooks.bad == []
    published, blocked = hooks.received
    assert published["state"] == "published" and published["xsas"] == [1]
    assert blocked["state"] == "blocked"
    assert blocked["branch"] == "xsa/4.19"
    assert blocked["xsas"] == [2]
    assert blocked["url"] == data["proposals"][0]["url"]
    assert blocked["subject"] == "[xsabot] xsa/4.19: XSA-2 blocked"
    assert blocked["_delivery"] == blocked["key"]
    assert blocked["key"].startswith("xsa/4.19:blocked:")
    assert HOOK_SECRET not in json.dumps(hooks.received)


def test_a_webhook_with_the_wrong_secret_is_refused_and_retried(
    repo_bot: tuple[Bot, RepoBuilder],
    xenlike: XenLike,
    hooks: Hooks,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot, repo = repo_bot
    monkeypatch.setenv("XSABOT_TEST_HOOK_SECRET", "not-the-receivers-secret")
    config = _config(tmp_path, hook=hooks.url)
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": manifest(xenlike, (1, ["xsa1"]))})
    refused = _reconcile(bot, config)
    assert _counts(refused) == {"webhook": {"sent": 0, "failed": 1, "pending": 1}}
    assert len(hooks.bad) == 1 and hooks.received == []
    monkeypatch.setenv("XSABOT_TEST_HOOK_SECRET", HOOK_SECRET)
    assert _counts(_reconcile(bot, config))["webhook"]["sent"] == 1
    assert [h["state"] for h in hooks.received] == ["published"]


def test_notify_test_reaches_every_channel(
    repo_bot: tuple[Bot, RepoBuilder], smtp: SmtpServer, hooks: Hooks, tmp_path: Path
) -> None:
    bot, _ = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port, hook=hooks.url)
    run = bot("notify", "--test", "--config", str(config))
    assert run.status == 0, run.err
    assert run.out.splitlines() == ["email: sent", "webhook: sent"]
    [mail] = smtp.box.take()
    assert mail["Subject"] == "[xsabot] test message"
    [hook] = hooks.received
    assert hook["state"] == "test"
    for text in (run.out, run.err, *(r.decode() for r in smtp.box.raw), json.dumps(hook)):
        assert PASSWORD not in text and HOOK_SECRET not in text

    smtp.stop()
    down = bot("notify", "--test", "--config", str(config))
    assert down.status == 2
    assert down.out.startswith("email: failed: email via 127.0.0.1:")
    assert "webhook: sent" in down.out


def test_notify_test_without_channels_says_what_to_configure(
    repo_bot: tuple[Bot, RepoBuilder],
) -> None:
    bot, _ = repo_bot
    run = bot("notify", "--test")
    assert run.status == 2
    assert "no channel configured: add `notify:`" in run.err


def test_a_secret_never_reaches_output_messages_or_the_mirror(
    repo_bot: tuple[Bot, RepoBuilder],
    xenlike: XenLike,
    smtp: SmtpServer,
    hooks: Hooks,
    tmp_path: Path,
) -> None:
    bot, repo = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port, hook=hooks.url)
    smtp.box.logins.clear()
    _start_with_hook = _reconcile  # both channels on every pass
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": manifest(xenlike, (1, ["xsa1"]))})
    _start_with_hook(bot, config)
    _blocking(repo, xenlike)
    _start_with_hook(bot, config)
    assert smtp.box.logins and hooks.received
    texts = [r.decode() for r in smtp.box.raw] + [json.dumps(hooks.received)]
    texts.append(json.dumps(_notified(bot.mirror)))
    for path in bot.state.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".txt", ".log"):
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        assert PASSWORD not in text and HOOK_SECRET not in text


def test_a_failed_login_is_a_failed_send_that_hides_the_password(
    repo_bot: tuple[Bot, RepoBuilder],
    xenlike: XenLike,
    smtp: SmtpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot, repo = repo_bot
    monkeypatch.setenv("XSABOT_TEST_SMTP_PASSWORD", "wr0ng-pa55word")
    config = _config(tmp_path, smtp_port=smtp.port)
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": manifest(xenlike, (1, ["xsa1"]))})
    data = _reconcile(bot, config)
    assert data["status"] == 0  # the branch is published all the same
    assert _counts(data)["email"] == {"sent": 0, "failed": 1, "pending": 1}
    assert "wr0ng-pa55word" not in data["stderr"]
    assert smtp.box.take() == []


# -- the pure decisions -----------------------------------------------------------------------


def _report(**fields: Any) -> BranchReport:
    base: dict[str, Any] = {"manifest": "4.19", "branch": "xsa/4.19", "path": "m/4.19.yaml"}
    return BranchReport(**(base | fields))


def _blocked(xsa: int, reason: str = "conflict") -> BlockedXsa:
    return BlockedXsa(xsa=xsa, commit=None, paths=("xen/a.c",), reason=reason)


def test_the_same_condition_says_nothing_and_a_new_blocked_set_says_it_again() -> None:
    doc, events = branch_events(NotifyDoc(), [_report(action="none", blocked=(_blocked(2),))])
    assert [e.kind for e in events] == ["blocked"]
    same, events = branch_events(doc, [_report(action="none", blocked=(_blocked(2),))])
    assert events == [] and same == doc
    worse, events = branch_events(
        doc, [_report(action="none", blocked=(_blocked(2), _blocked(4, "waits-for")))]
    )
    assert [e.xsas for e in events] == [(2, 4)]
    _, events = branch_events(worse, [_report(action="error", problems=("unreachable",))])
    assert events == []  # an error says nothing about the branch's condition


def test_a_message_is_the_same_text_whoever_renders_it() -> None:
    doc, [event] = branch_events(NotifyDoc(), [_report(action="none", blocked=(_blocked(7),))])
    [entry] = doc.outbox
    again = NotifyDoc.from_text(doc.to_text()).outbox[0]
    assert render(entry) == render(again)
    assert entry.key == event.key == Pending(key=event.key, event=event).key


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n) for n in (1, 2, 3, 7, 30)] == [60, 120, 240, 3600, 3600]
    assert backoff(2, first=0) == 0


def test_forge_comment_goes_on_the_bots_merge_request_once(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, smtp: SmtpServer, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port, extra="")
    config.write_text(config.read_text().replace("notify:\n", "notify:\n  forge_comment: true\n"))
    _start(bot, repo, xenlike, config, smtp)
    _blocking(repo, xenlike)
    data = _reconcile(bot, config)
    assert _counts(data)["forge_comment"] == {"sent": 1, "failed": 0, "pending": 0}
    [proposal] = data["proposals"]
    record = json.loads(Path(proposal["url"].removeprefix("file://")).read_text())
    [comment] = record["comments"]
    assert comment["key"] == "xsabot-notify:xsa/4.19"
    assert "[xsabot] xsa/4.19: XSA-2 blocked" in comment["body"]
    _reconcile(bot, config)
    record = json.loads(Path(proposal["url"].removeprefix("file://")).read_text())
    assert len(record["comments"]) == 1


def test_an_environment_failure_is_told_after_the_grace_and_its_end_once(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, smtp: SmtpServer, tmp_path: Path
) -> None:
    bot, repo = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port)
    _start(bot, repo, xenlike, config, smtp)
    upstream = bot.upstream
    bot.upstream = tmp_path / "gone"  # the upstream cannot be reached
    long_grace = config.read_text().replace("notify:\n", "notify:\n  environment_grace: 3600\n")
    config.write_text(long_grace)
    assert _reconcile(bot, config)["status"] == 2
    assert smtp.box.take() == []  # within the grace: nothing yet
    config.write_text(long_grace.replace("environment_grace: 3600", "environment_grace: 0"))
    failed = _reconcile(bot, config)
    assert failed["status"] == 2
    assert _counts(failed)["email"]["sent"] == 1
    [mail] = smtp.box.take()
    assert mail["Subject"] == "[xsabot] tree xen: passes fail for the environment"
    assert "gone" in mail.get_content()
    _reconcile(bot, config)
    assert smtp.box.take() == []
    bot.upstream = upstream
    _reconcile(bot, config)
    assert [m["Subject"] for m in smtp.box.take()] == ["[xsabot] tree xen: passes work again"]


def test_a_sender_that_loses_the_claim_sends_nothing(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike, smtp: SmtpServer, tmp_path: Path
) -> None:
    from bot.app.wiring import Adapters
    from bot.git.publish import push

    bot, repo = repo_bot
    config = _config(tmp_path, smtp_port=smtp.port)
    _start(bot, repo, xenlike, config, smtp)

    def another_replica_claims_first(work, mirror, updates, **kw):  # type: ignore[no-untyped-def]
        if len(updates) == 1:  # the claim: another replica's lands first, ours loses its lease
            doc = _notified(Path(mirror))
            doc["outbox"][0] |= {"owner": "another", "claimed_until": 4e9, "claimed": True}
            _write_notified(Path(mirror), doc)
        return push(work, mirror, updates, **kw)

    bot.adapters = Adapters(push=another_replica_claims_first)
    _blocking(repo, xenlike)
    lost = _reconcile(bot, config)
    assert _counts(lost)["email"] == {"sent": 0, "failed": 0, "pending": 1}
    assert smtp.box.take() == []
    bot.adapters = None  # the other replica's claim holds: this one keeps off
    assert _counts(_reconcile(bot, config))["email"]["sent"] == 0
    assert smtp.box.take() == []


def test_a_claim_keeps_others_off_until_it_runs_out() -> None:
    from bot.core.notify import CLAIM_SECONDS, Sent, claim, due, record

    doc, [event] = branch_events(NotifyDoc(), [_report(action="none", blocked=(_blocked(2),))])
    assert due(doc, 0.0, "b") == list(doc.outbox)
    mine = claim(doc, [event.key], me="a", now=0.0, channels=["email"], mrs={})
    assert due(mine, 1.0, "a") == list(mine.outbox)
    assert due(mine, 1.0, "b") == []
    assert due(mine, CLAIM_SECONDS + 1, "b") == list(mine.outbox)  # a died: b takes over
    failed = record(mine, [Sent(event.key, (), {"email": "down"})], me="a", now=10.0)
    [entry] = failed.outbox
    assert (entry.attempts, entry.next_attempt, entry.owner) == (1, 70.0, "")
    assert due(failed, 69.0, "b") == [] and due(failed, 70.0, "b") == [entry]
    done = record(failed, [Sent(event.key, ("email",), {})], me="b", now=80.0)
    assert done.outbox == () and done.counts["email"].sent == 1
    assert done.counts["email"].failed == 1


def test_a_bad_notify_section_is_located(repo_bot: tuple[Bot, RepoBuilder], tmp_path: Path) -> None:
    bot, _ = repo_bot
    config = tmp_path / "xsabot.yaml"
    config.write_text(
        "notify:\n  email:\n    smtp: nohost\n    from: xsabot\n    to: []\n"
        "  webhook: {url: 'ftp://x', secret: inline}\n"
    )
    run = bot("notify", "--test", "--config", str(config))
    assert run.status == 2
    assert run.err.splitlines()[1:] == [
        f"{config}:3:11: notify.email.smtp: expected host:port, got 'nohost'",
        f"{config}:4:11: notify.email.from: 'xsabot' is not an email address (user@domain)",
        f"{config}:5:9: notify.email.to: List should have at least 1 item after validation, not 0",
        f"{config}:6:18: notify.webhook.url: a webhook url is http:// or https://, without spaces",
        f"{config}:6:29: notify.webhook.secret: Extra inputs are not permitted",
    ]
