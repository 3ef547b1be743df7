"""Which merge request a CI job runs for, from the forge's CI variables.

`xsabot plan` run in a merge request pipeline posts its plan on that merge request without
being told `--mr N`: GitLab names it in `CI_MERGE_REQUEST_IID` (merge request pipelines only),
GitHub Actions in the event payload at `GITHUB_EVENT_PATH` (and in `GITHUB_REF`,
`refs/pull/N/merge`, for pull_request events).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.errors import SetupError

_PULL_REF = re.compile(r"^refs/pull/(\d+)/(?:merge|head)$")
_PULL_EVENTS = ("pull_request", "pull_request_target", "pull_request_review")


@dataclass(frozen=True)
class CiMergeRequest:
    """The merge request of the CI job. `project` is the target project (where the MR lives)."""

    kind: Literal["gitlab", "github"]
    project: str
    number: int
    server_url: str | None = None
    api_url: str | None = None


def merge_request_from_ci(environ: Mapping[str, str] | None = None) -> CiMergeRequest | None:
    """The merge request this CI job runs for, or None outside a merge request pipeline."""
    env = os.environ if environ is None else environ
    if env.get("GITLAB_CI") or env.get("CI_MERGE_REQUEST_IID"):
        return _gitlab(env)
    if env.get("GITHUB_ACTIONS"):
        return _github(env)
    return None


def _gitlab(env: Mapping[str, str]) -> CiMergeRequest | None:
    iid = env.get("CI_MERGE_REQUEST_IID")
    if not iid:
        return None  # a branch or tag pipeline: no merge request to comment on
    # In a pipeline for a fork's merge request CI_PROJECT_PATH may be the fork; the merge
    # request itself lives in the target project.
    project = env.get("CI_MERGE_REQUEST_PROJECT_PATH") or env.get("CI_PROJECT_PATH")
    if not project:
        raise SetupError("CI_MERGE_REQUEST_IID is set but CI_PROJECT_PATH is not")
    return CiMergeRequest(
        kind="gitlab",
        project=project,
        number=_number("CI_MERGE_REQUEST_IID", iid),
        server_url=env.get("CI_SERVER_URL"),
        api_url=env.get("CI_API_V4_URL"),
    )


def _github(env: Mapping[str, str]) -> CiMergeRequest | None:
    event = env.get("GITHUB_EVENT_NAME", "")
    number = _number_from_event(env.get("GITHUB_EVENT_PATH")) if event in _PULL_EVENTS else None
    if number is None:
        match = _PULL_REF.match(env.get("GITHUB_REF", ""))
        number = int(match.group(1)) if match else None
    if number is None:
        return None
    project = env.get("GITHUB_REPOSITORY")
    if not project:
        raise SetupError("a GitHub pull request job without GITHUB_REPOSITORY")
    return CiMergeRequest(
        kind="github",
        project=project,
        number=number,
        server_url=env.get("GITHUB_SERVER_URL"),
        api_url=env.get("GITHUB_API_URL"),
    )


def _number_from_event(path: str | None) -> int | None:
    if not path:
        return None
    try:
        payload = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SetupError(f"GITHUB_EVENT_PATH {path}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise SetupError(f"GITHUB_EVENT_PATH {path}: not JSON") from None
    if not isinstance(payload, dict):
        return None
    pull = payload.get("pull_request")
    number = pull.get("number") if isinstance(pull, dict) else payload.get("number")
    return number if isinstance(number, int) and number > 0 else None


def _number(name: str, value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise SetupError(f"{name}={value!r} is not a merge request number")
    return int(value)
