"""Ports: what the core needs from the world, as small Protocols with plain data in and out.

Adapters (`bot/forges/*`, `bot/notify/*`, `bot/git/*`) implement them; library exceptions are
converted to `bot.errors` types inside the adapter and never cross a port.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

MARKER_PREFIX = "<!-- xsabot:"
BOT_BRANCH_PREFIX = "xsabot/"
# The trailer of every proposal commit: how the bot knows its own commits on a branch, with no
# local state (a lost state dir, a second replica). Its value: the branch and the content hash.
PROPOSAL_TRAILER = "Xsabot-Proposal"

MergeRequestState = Literal["open", "merged", "closed"]
CommitState = Literal["pending", "success", "failure", "error"]
_BODY_MARKER = re.compile(
    re.escape(MARKER_PREFIX) + r"content=(?P<hash>[0-9a-f]+) branch=(?P<branch>\S+) -->"
)


@dataclass(frozen=True)
class Proposal:
    """A merge request the bot wants to exist on the manifests repository.

    `branch` is fixed per (manifest, XSA), e.g. `xsabot/4.19/xsa-470`, so the bot finds its own
    merge request again instead of opening a second one. `files` maps manifests-repository paths
    to their full new text; the adapter commits them on `branch` (based on the default branch)
    as the bot identity, with `commit_message`, and pushes with a lease.
    """

    branch: str
    title: str
    body: str
    files: Mapping[str, str] = field(default_factory=dict)
    draft: bool = False

    def content_hash(self) -> str:
        """What decides whether an existing merge request needs an update."""
        payload = json.dumps(
            [self.branch, self.title, self.body, self.draft, sorted(self.files.items())],
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def body_with_marker(self) -> str:
        """The body as posted: a hidden marker carries the content hash and the branch, and
        is how the bot tells its own merge requests from anyone else's (`bot_marker_in`)."""
        marker = f"{MARKER_PREFIX}content={self.content_hash()} branch={self.branch} -->"
        return f"{self.body}\n\n{marker}\n"

    def commit_message(self, *, body: bool = True) -> str:
        """The proposal commit's message: the title, the body (unless `body` is False), and
        the trailer that marks the commit as the bot's proposal (`proposal_trailer_in`)."""
        text = f"{self.title}\n\n{self.body}" if body else self.title
        return f"{text.rstrip()}\n\n{PROPOSAL_TRAILER}: {self.branch} {self.content_hash()}\n"


def content_hash_in(body: str | None) -> str | None:
    """The content hash from a posted body's hidden marker, if any."""
    if not body:
        return None
    start = body.rfind(MARKER_PREFIX + "content=")
    if start < 0:
        return None
    rest = body[start + len(MARKER_PREFIX) + len("content=") :]
    return rest.split(" ", 1)[0].strip() or None


def bot_marker_in(body: str | None, branch: str) -> bool:
    """Whether a merge request body carries the bot's marker for `branch`: only such merge
    requests are the bot's, whoever else opens one from a branch under `xsabot/`."""
    found = [m["branch"] for m in _BODY_MARKER.finditer(body or "")]
    return bool(found) and found[-1] == branch


def proposal_trailer_in(message: str) -> tuple[str, str] | None:
    """(branch, content hash) of the bot's proposal trailer in a commit message, if any."""
    lines = message.rstrip("\n").splitlines()
    last = lines[-1] if lines else ""
    key, _, value = last.partition(": ")
    parts = value.split()
    if key != PROPOSAL_TRAILER or len(parts) != 2:
        return None
    return parts[0], parts[1]


@dataclass(frozen=True)
class MergeRequest:
    """A merge request as the forge has it (`id`: GitLab iid, GitHub number, local serial)."""

    id: int
    branch: str
    title: str
    state: MergeRequestState
    draft: bool
    url: str
    content_hash: str | None = None


class Forge(Protocol):
    """The manifests repository's forge. Only the bot's own merge requests are ever changed:
    those from a branch under `xsabot/` whose body carries its marker (`bot_marker_in`), so a
    maintainer's merge request from such a branch is never the bot's, and a replica with no
    local state still knows the bot's own."""

    def default_branch(self) -> str:
        """The manifests repository's default branch (the base of every proposal)."""
        ...

    def find(self, branch: str) -> MergeRequest | None:
        """The newest of the bot's merge requests from `branch`, in any state, or None."""
        ...

    def list_open(self) -> list[MergeRequest]:
        """The bot's open merge requests: one listing, however many there are."""
        ...

    def open(self, proposal: Proposal) -> MergeRequest:
        """Push the proposal's branch and open a merge request; an existing one is returned."""
        ...

    def update(self, mr: MergeRequest, proposal: Proposal) -> MergeRequest:
        """Push the new branch content and edit title, body and draft flag."""
        ...

    def close(self, mr: MergeRequest, comment: str) -> None:
        """Comment why, then close the merge request."""
        ...

    def comment(self, mr_id: int, key: str, body: str) -> None:
        """Create, or edit in place, the bot's one comment tagged `key` on a merge request."""
        ...

    def set_status(
        self, sha: str, state: CommitState, context: str, description: str, url: str | None = None
    ) -> None:
        """Set a commit status (GitLab) or check (GitHub) on a commit."""
        ...

    def check_status(self, sha: str) -> Literal["pending", "success", "failure", "unknown"]:
        """The combined pipeline/check status of a commit (for the check gate)."""
        ...


@dataclass(frozen=True)
class MergedProposal:
    """One of the bot's merge requests found merged and not told of before (`TidiesMerged`)."""

    mr: MergeRequest
    branch_removed: bool  # False: the branch holds a commit not the bot's, so it stays


@runtime_checkable
class TidiesMerged(Protocol):
    """What a forge offers beyond `Forge` so a merged proposal is told of once and its branch
    goes: the local forge, GitLab and GitHub have it."""

    def tidy_merged(self, open_mrs: Sequence[MergeRequest]) -> list[MergedProposal]:
        """The bot's merge requests merged since the last call (`open_mrs`: the pass's listing
        of the open ones, so a forge asks about merged ones only when a bot branch is left
        that no open merge request is from), now recorded so (the local
        forge's record; on a remote forge the branch's absence), each branch deleted when its
        tip is the bot's own proposal commit for it (its `Xsabot-Proposal:` trailer) and is
        in the default branch. A branch without the trailer is never deleted."""
        ...


CheckStatus = Literal["passed", "failed", "timeout"]


class CheckVerdict(Protocol):
    """What a check said about one tree (a timeout is no verdict: it says nothing)."""

    @property
    def tree(self) -> str: ...
    @property
    def status(self) -> CheckStatus: ...
    @property
    def seconds(self) -> float: ...
    @property
    def passed(self) -> bool: ...

    def output(self) -> str:
        """The whole output, made independent of the machine (reports quote it)."""
        ...


class Check(Protocol):
    """The check a built tree must pass before it is published: the operator's command
    (`bot.check.runner`) or the forge's CI (`bot.check.forge_ci`). Verdicts are per tree."""

    @property
    def command(self) -> str:
        """What the reports call it: the command, or `forge-ci`."""
        ...

    @property
    def timeout(self) -> float: ...

    @property
    def runs(self) -> int:
        """Checks really run so far (not read from the cache)."""
        ...

    @property
    def reports_compiler_output(self) -> bool:
        """Whether a failure carries the compiler's lines, which the build-aware
        prerequisite search starts from (a forge's CI status carries none)."""
        ...

    def add_candidate(self, tree: str, commit: str, branch: str) -> None:
        """`commit` of `branch` has `tree`: a check that runs on commits pushes it."""
        ...

    def cached(self, tree: str) -> CheckVerdict | None:
        """The recorded verdict on `tree`, if any; runs nothing."""
        ...

    def check(self, tree: str, *, line: str | None = None) -> CheckVerdict:
        """The verdict on `tree`, running the check unless it is recorded already; `line`
        (a branch): where a check that builds incrementally keeps its build state."""
        ...


class ManifestEditor(Protocol):
    """Edits of a manifest's text that keep its comments and layout (`bot.manifest.edit`)."""

    def add_prerequisites(
        self,
        text: str,
        xsa: int,
        prereqs: Sequence[tuple[str, str]],
        before: Mapping[str, str] | None = None,
    ) -> str:
        """`text` with `(commit, subject)` prerequisites added to `xsa`'s entry; `before`
        places a commit right before one of the XSA's commits (default: the first)."""
        ...

    def mark_blocked(self, text: str, xsa: int, why: str) -> str:
        """`text` with `xsa` marked `status: blocked` for `why`."""
        ...


class Progress(Protocol):
    """Where long work says what it is doing (a terminal spinner with the elapsed time, log
    lines with timings, or nothing). `of=(n, total)`: this step is the n-th of `total` alike
    (`building 4.19 (3/6)`)."""

    def step(
        self, message: str, of: tuple[int, int] | None = None
    ) -> AbstractContextManager[None]: ...


class NoProgress:
    """Progress that shows nothing: the default of every use case."""

    def step(self, message: str, of: tuple[int, int] | None = None) -> AbstractContextManager[None]:
        return nullcontext()
