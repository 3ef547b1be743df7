"""A bare clone that talks to a forge's repositories: fetch a branch, ask for one, push one.

Credentials reach git only through the environment `env_for(url)` gives for each URL (see
`bot.forges.credentials`): never in a URL or in argv. Every network call has a timeout, and
what git says about a failure is redacted before it goes into an error. A push names the tip
it expects (`--force-with-lease=refs/heads/B:<tip>`): a push by anyone in between makes it
fail instead of being overwritten. URLs go after `--`, never where git reads options.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from bot.errors import GitError
from bot.git.runner import git, git_text
from bot.redact import redact

NETWORK_TIMEOUT = 300.0
_LEASE_LOST = re.compile(r"stale info|\[rejected\]|fetch first|non-fast-forward")


def _url(url: str) -> str:
    """`url`, unless git could read it as an option (it goes after `--` as well)."""
    if url.startswith("-"):
        raise GitError(f"{redact(url)!r}: a repository URL may not start with '-'")
    return url


class RemoteClone:
    """The bare repository at `path`; made on first use."""

    def __init__(
        self,
        path: Path,
        *,
        env_for: Callable[[str], Mapping[str, str]],
        timeout: float = NETWORK_TIMEOUT,
    ) -> None:
        self.path = path
        self._env_for = env_for
        self._timeout = timeout

    def ensure(self) -> None:
        if not (self.path / "HEAD").is_file():
            self.path.mkdir(parents=True, exist_ok=True)
            git(["init", "--bare", "--quiet", self.path])

    def fetch(self, url: str, branch: str, into: str) -> str:
        """Fetch refs/heads/`branch` of `url` into the ref `into`; return its commit."""
        git(
            ["fetch", "--no-tags", "--quiet", "--", _url(url), f"+refs/heads/{branch}:{into}"],
            cwd=self.path,
            env=self._env_for(url),
            timeout=self._timeout,
        )
        return git_text(["rev-parse", "--verify", into], cwd=self.path)

    def has_branch(self, url: str, branch: str) -> bool:
        """Whether `url` has refs/heads/`branch` now."""
        listed = git_text(
            ["ls-remote", "--", _url(url), f"refs/heads/{branch}"],
            cwd=self.path,
            env=self._env_for(url),
            timeout=self._timeout,
        )
        return bool(listed.strip())

    def branches(self, url: str, prefix: str) -> dict[str, str]:
        """The branches of `url` under `prefix` now, and their tips."""
        listed = git_text(
            ["ls-remote", "--", _url(url), f"refs/heads/{prefix}*"],
            cwd=self.path,
            env=self._env_for(url),
            timeout=self._timeout,
        )
        tips = {}
        for line in listed.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith(f"refs/heads/{prefix}"):
                tips[ref.removeprefix("refs/heads/")] = sha
        return tips

    def delete(self, url: str, branch: str, expected: str) -> bool:
        """Delete refs/heads/`branch` of `url` if it is still at `expected`. False if someone
        moved it meanwhile; GitError for any other failure."""
        return self._leased_push(url, branch, "", expected)

    def committers(self, tip: str, since: str) -> list[tuple[str, str]]:
        """(commit, committer email) of the commits in `tip` and not in `since`."""
        lines = git_text(["log", "--format=%H %ce", tip, "--not", since], cwd=self.path)
        return [
            (sha, email) for sha, _, email in (line.partition(" ") for line in lines.splitlines())
        ]

    def push(self, url: str, branch: str, new: str, expected: str | None) -> bool:
        """Point refs/heads/`branch` of `url` at `new` if it is still at `expected` (None: must
        not exist). False if someone moved it meanwhile; GitError for any other failure."""
        return self._leased_push(url, branch, new, expected)

    def _leased_push(self, url: str, branch: str, new: str, expected: str | None) -> bool:
        """`git push` of `new` (empty: a deletion) to refs/heads/`branch`, leased on
        `expected`; False when the lease is lost."""
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        proc = git(
            ["push", "--porcelain", lease, "--", _url(url), f"{new}:refs/heads/{branch}"],
            cwd=self.path,
            env=self._env_for(url),
            timeout=self._timeout,
            check=False,
        )
        if proc.returncode == 0:
            return True
        output = redact((proc.stdout + proc.stderr).decode("utf-8", "replace")).strip()
        if _LEASE_LOST.search(output):
            return False
        raise GitError(f"git push {redact(url)} {new}:{branch}: {output}")
