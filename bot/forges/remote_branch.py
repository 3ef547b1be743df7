"""A proposal's branch on a forge's repository: committed in a cached clone, pushed with a lease.

Shared by the GitLab and GitHub forges. The clone is a bare repository under the state dir
that only ever receives fetches of the default branch and of the bot's branch
(`bot.git.remote`); commits are made with plumbing (`bot.git.proposal_branch`), so there is no
work tree to get dirty. A push names the branch tip it saw: a push by anyone in between makes
it fail instead of being overwritten. A branch that carries a commit other than the bot's own
proposal commits (committed by the bot and ending with its `Xsabot-Proposal:` trailer for
that branch) is never overwritten at all: a volunteer's manual backport pushed to the bot's
draft MR, or a maintainer's own branch under `xsabot/`. Proposal commits are dated as the
commit they are made on, so the same proposal on the same base is the same commit anywhere.

The GitLab and GitHub forges take their checks before a request from here: `check_update`,
`check_close`, and `check_proposal`, which is `bot.forges.branch`'s, the local forge's too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from bot.config import Identity
from bot.core.ports import (
    BOT_BRANCH_PREFIX,
    MergedProposal,
    MergeRequest,
    Proposal,
    proposal_trailer_in,
)
from bot.errors import ForgeConflict, ForgeError
from bot.forges.branch import check_proposal as check_proposal  # re-exported
from bot.git.proposal_branch import (
    commit_date,
    commit_files,
    commit_info,
    is_ancestor,
    same_tree,
)
from bot.git.remote import RemoteClone


class RemoteBranches:
    """Push proposal branches to `push_url`, based on the default branch of `fetch_url`."""

    def __init__(
        self,
        cache: Path,
        *,
        fetch_url: str,
        push_url: str,
        env_for: Callable[[str], Mapping[str, str]],
        identity: Identity,
    ) -> None:
        self.cache = cache
        self.fetch_url = fetch_url
        self.push_url = push_url
        self._clone = RemoteClone(cache, env_for=env_for)
        self._identity = identity

    def push(self, branch: str, *, base: str, files: Mapping[str, str], message: str) -> str:
        """Make `branch` hold base + `files`; return its tip. No push when nothing changes."""
        self._clone.ensure()
        base_sha = self._clone.fetch(self.fetch_url, base, f"refs/xsabot/base/{base}")
        tip = self._remote_tip(branch)
        if tip is not None:
            self._refuse_foreign_commits(branch, tip, base_sha)
        new = commit_files(
            self.cache,
            base=base_sha,
            files=files,
            message=message,
            name=self._identity.name,
            email=self._identity.email,
            date=commit_date(self.cache, base_sha),
        )
        if tip is not None and same_tree(self.cache, tip, new):
            return tip
        if not self._clone.push(self.push_url, branch, new, tip):
            raise ForgeConflict(
                f"{branch}: someone else pushed to the bot's branch meanwhile; "
                "not overwriting it (the next pass sees the new tip)"
            )
        return new

    def remove_merged(
        self,
        merged: Callable[[], Sequence[MergeRequest]],
        *,
        open_branches: Collection[str],
        base: Callable[[], str],
    ) -> list[MergedProposal]:
        """Delete the branches of the bot's merged merge requests (`merged` lists them) that
        are still there, each only if its tip is the bot's proposal commit for it and is in
        the default branch (`base` names it); return those deleted. The branch's absence is
        what tells the next pass it was told of. The forge is asked nothing when every bot
        branch left is one of `open_branches` (one `ls-remote` a pass, no request)."""
        self._clone.ensure()
        tips = self._clone.branches(self.push_url, BOT_BRANCH_PREFIX)
        if not set(tips) - set(open_branches):
            return []
        candidates = [mr for mr in merged() if mr.branch in tips]
        if not candidates:
            return []
        default = base()
        base_sha = self._clone.fetch(self.fetch_url, default, f"refs/xsabot/base/{default}")
        removed: dict[str, MergedProposal] = {}
        for mr in sorted(candidates, key=lambda m: -m.id):  # the newest merge request first
            if mr.branch in removed:
                continue
            tip = self._clone.fetch(self.push_url, mr.branch, f"refs/xsabot/tip/{mr.branch}")
            if tip != tips[mr.branch] or not self._is_proposal_commit(mr.branch, tip):
                continue
            if not is_ancestor(self.cache, tip, base_sha):
                continue  # not what was merged (a newer proposal on the same branch, say)
            if self._clone.delete(self.push_url, mr.branch, tip):
                removed[mr.branch] = MergedProposal(mr, branch_removed=True)
        return sorted(removed.values(), key=lambda m: m.mr.branch)

    def _is_proposal_commit(self, branch: str, sha: str) -> bool:
        info = commit_info(self.cache, sha)
        trailer = proposal_trailer_in(info.message)
        return (
            trailer is not None
            and trailer[0] == branch
            and info.committer_email == self._identity.email
        )

    def _remote_tip(self, branch: str) -> str | None:
        """The branch's tip in the push repository, fetched so trees can be compared."""
        if not self._clone.has_branch(self.push_url, branch):
            return None
        return self._clone.fetch(self.push_url, branch, f"refs/xsabot/tip/{branch}")

    def _refuse_foreign_commits(self, branch: str, tip: str, base_sha: str) -> None:
        for sha, email in self._clone.committers(tip, base_sha):
            if email != self._identity.email:
                raise ForgeConflict(
                    f"{branch}: commit {sha[:12]} is by {email}, not by the bot; "
                    "not overwriting someone's work on the bot's branch"
                )
            trailer = proposal_trailer_in(commit_info(self.cache, sha).message)
            if trailer is None or trailer[0] != branch:
                raise ForgeConflict(
                    f"{branch}: commit {sha[:12]} is not a proposal commit of the bot's for "
                    "this branch (no Xsabot-Proposal trailer naming it); not overwriting it"
                )


def check_update(mr: MergeRequest, proposal: Proposal) -> None:
    """What may be updated: a proposal `check_proposal` allows, on an open merge request of
    the same branch."""
    check_proposal(proposal)
    if mr.branch != proposal.branch:
        raise ForgeError(f"merge request !{mr.id} is from {mr.branch}, not {proposal.branch}")
    if mr.state != "open":
        raise ForgeConflict(f"merge request !{mr.id} is {mr.state}; not updating it")


def check_close(mr: MergeRequest) -> bool:
    """Whether there is anything to close; a merged merge request is never closed."""
    if mr.state == "merged":
        raise ForgeConflict(f"merge request !{mr.id} is merged; not closing it")
    return mr.state == "open"
