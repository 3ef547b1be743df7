"""Every forge's text through `bot.redact`: what the bot writes on the manifests repository.

Merge request titles and bodies, the proposal commit (its message is the title and body),
comments (the plan, the reason for closing), commit status descriptions: whatever the forge
kind (local, GitLab, GitHub), they leave the bot through this wrapper, which `bot.app.wiring`
puts around each. The files a proposal commits (manifest text) are left as they are: they
are the volunteers' YAML, and the bot's edits of it quote commit subjects, never its output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from bot.core.ports import CommitState, Forge, MergedProposal, MergeRequest, Proposal, TidiesMerged
from bot.forges.plan_comment import GITHUB_COMMENT_LIMIT, KeyedComments
from bot.redact import redact


class RedactingForge:
    """A `Forge` that passes all the text it sends through `redact` before `inner` sees it."""

    def __init__(self, inner: Forge) -> None:
        self.inner = inner

    @property
    def comment_limit(self) -> int:
        return int(getattr(self.inner, "comment_limit", GITHUB_COMMENT_LIMIT))

    def default_branch(self) -> str:
        return self.inner.default_branch()

    def find(self, branch: str) -> MergeRequest | None:
        return self.inner.find(branch)

    def list_open(self) -> list[MergeRequest]:
        return self.inner.list_open()

    def open(self, proposal: Proposal) -> MergeRequest:
        return self.inner.open(_redacted(proposal))

    def update(self, mr: MergeRequest, proposal: Proposal) -> MergeRequest:
        return self.inner.update(mr, _redacted(proposal))

    def close(self, mr: MergeRequest, comment: str) -> None:
        self.inner.close(mr, redact(comment))

    def comment(self, mr_id: int, key: str, body: str) -> None:
        self.inner.comment(mr_id, key, redact(body))

    def comment_keys(self, mr_id: int) -> list[str]:
        """The inner forge's keyed comments (`KeyedComments`); none if it keeps no keys."""
        return self.inner.comment_keys(mr_id) if isinstance(self.inner, KeyedComments) else []

    def delete_comment(self, mr_id: int, key: str) -> None:
        if isinstance(self.inner, KeyedComments):
            self.inner.delete_comment(mr_id, key)

    def tidy_merged(self, open_mrs: Sequence[MergeRequest]) -> list[MergedProposal]:
        """The inner forge's (`TidiesMerged`); nothing if it does not tidy."""
        if not isinstance(self.inner, TidiesMerged):
            return []
        return self.inner.tidy_merged(open_mrs)

    def set_status(
        self, sha: str, state: CommitState, context: str, description: str, url: str | None = None
    ) -> None:
        self.inner.set_status(sha, state, context, redact(description), url)

    def check_status(self, sha: str) -> Literal["pending", "success", "failure", "unknown"]:
        return self.inner.check_status(sha)


def _redacted(proposal: Proposal) -> Proposal:
    return replace(proposal, title=redact(proposal.title), body=redact(proposal.body))
