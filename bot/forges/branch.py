"""Which branches and files a proposal may write: every forge's rule, checked before any
commit or request is made. One function, so the forges cannot drift apart on it; the commits
themselves are made by `bot.git.proposal_branch`.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from bot.core.ports import BOT_BRANCH_PREFIX, Proposal
from bot.errors import ForgeError


def check_proposal(proposal: Proposal) -> None:
    """The bot writes only branches under its prefix, and only files inside the repository."""
    if not proposal.branch.startswith(BOT_BRANCH_PREFIX):
        raise ForgeError(f"{proposal.branch}: proposals live under {BOT_BRANCH_PREFIX}")
    for path in proposal.files:
        parts = PurePosixPath(path).parts
        if not parts or PurePosixPath(path).is_absolute() or ".." in parts or ".git" in parts:
            raise ForgeError(f"{path}: not a path inside the manifests repository")
