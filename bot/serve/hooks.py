"""Webhook verification: who may ask for a pass, and which events are worth one.

GitLab sends its secret token as is (`X-Gitlab-Token`); GitHub signs the body with it
(`X-Hub-Signature-256: sha256=<HMAC-SHA256 hex>`). Both are compared in constant time. The
secrets come from `XSABOT_GITLAB_WEBHOOK_SECRET` / `XSABOT_GITHUB_WEBHOOK_SECRET`, or from the
file named by the same variable with `_FILE` appended; they are registered for redaction as
soon as they are read and never logged.

An event asks for a pass only when it is a push, a tag or a merge (pull) request event of a
repository the config names: the manifests project, or a tree's upstream or mirror.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.config import Config
from bot.errors import UsageError
from bot.redact import register_secret

Forge = Literal["gitlab", "github"]
MAX_BODY = 1 << 20  # forges send a few KiB; GitLab caps a push hook's commit list at 20

SECRET_VARIABLES: dict[Forge, str] = {
    "gitlab": "XSABOT_GITLAB_WEBHOOK_SECRET",
    "github": "XSABOT_GITHUB_WEBHOOK_SECRET",
}
GITLAB_EVENTS = frozenset({"Push Hook", "Tag Push Hook", "Merge Request Hook"})
GITHUB_EVENTS = frozenset({"push", "pull_request", "create"})


def load_secret(forge: Forge, environ: Mapping[str, str] | None = None) -> str | None:
    """The forge's webhook secret from its variable or `<variable>_FILE`; None when neither
    is set (that forge's hooks are then refused). UsageError for an unreadable or empty one."""
    environ = os.environ if environ is None else environ
    name = SECRET_VARIABLES[forge]
    value = environ.get(name)
    if value is None and environ.get(name + "_FILE"):
        where = environ[name + "_FILE"]
        try:
            value = Path(where).read_text().strip()
        except OSError as exc:
            raise UsageError(f"{name}_FILE: cannot read {where}: {exc.strerror}") from None
    if value is None:
        return None
    if not value:
        raise UsageError(f"{name}: the webhook secret is empty")
    register_secret(value)
    return value


@dataclass(frozen=True)
class Verdict:
    status: int  # HTTP status to answer: 401 missing, 403 wrong, 0 verified
    message: str


VERIFIED = Verdict(0, "")


def verify_gitlab(token: str | None, secret: str) -> Verdict:
    if not token:
        return Verdict(401, "missing X-Gitlab-Token")
    if not hmac.compare_digest(token.encode(), secret.encode()):
        return Verdict(403, "wrong X-Gitlab-Token")
    return VERIFIED


def verify_github(signature: str | None, body: bytes, secret: str) -> Verdict:
    if not signature:
        return Verdict(401, "missing X-Hub-Signature-256")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.strip().encode(), expected.encode()):
        return Verdict(403, "wrong X-Hub-Signature-256")
    return VERIFIED


def github_signature(body: bytes, secret: str) -> str:
    """What GitHub sends for `body` (for tests and for checking a set-up by hand)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _normal(location: str) -> str:
    """A repository location reduced for comparison: no scheme, user, `.git` or slash,
    `git@host:path` read as `host/path`, lowercase."""
    text = location.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = re.sub(r"^[^/@]+@", "", text)
    text = re.sub(r"^([^/:]+):(?!\d)", r"\1/", text)
    return text.rstrip("/").removesuffix(".git").rstrip("/")


def watched(config: Config) -> tuple[frozenset[str], frozenset[str]]:
    """(project paths, normalised locations) whose events ask for a pass."""
    forge = config.forge
    projects = {
        p.lower() for p in (forge.project, *(t.check_project for t in config.trees.values())) if p
    }
    locations = {config.mirror_of(t) for t in config.trees} | {
        t.upstream for t in config.trees.values()
    }
    if forge.project:
        locations |= {forge.clone_url(), f"{forge.web_url()}/{forge.project}"}
    return frozenset(projects), frozenset(_normal(x) for x in locations)


def event_of(forge: Forge, headers: Mapping[str, str], payload: Any) -> str | None:
    """The event's name when it is one that may change a branch; None to ignore it."""
    if forge == "gitlab":
        event = headers.get("x-gitlab-event", "")
        return event if event in GITLAB_EVENTS else None
    event = headers.get("x-github-event", "")
    if event == "create" and isinstance(payload, dict) and payload.get("ref_type") != "tag":
        return None  # a new branch: its push event comes too
    return event if event in GITHUB_EVENTS else None


def repository_of(forge: Forge, payload: Any) -> tuple[str | None, list[str]]:
    """(project path, locations) the event is about, from its payload."""
    if not isinstance(payload, dict):
        return None, []
    key, path_key, url_keys = (
        ("project", "path_with_namespace", ("git_http_url", "git_ssh_url", "web_url", "url"))
        if forge == "gitlab"
        else ("repository", "full_name", ("clone_url", "ssh_url", "html_url", "git_url"))
    )
    repo = payload.get(key)
    if not isinstance(repo, dict):
        return None, []
    path = repo.get(path_key)
    urls = [u for u in (repo.get(k) for k in url_keys) if isinstance(u, str)]
    return (path if isinstance(path, str) else None), urls


def is_watched(
    forge: Forge, payload: Any, projects: frozenset[str], locations: frozenset[str]
) -> bool:
    path, urls = repository_of(forge, payload)
    if path is not None and path.lower() in projects:
        return True
    return any(_normal(u) in locations for u in _strings(urls))


def _strings(values: Iterable[object]) -> list[str]:
    return [v for v in values if isinstance(v, str)]
