"""Carry out the proposal decisions of a pass against a forge, and pick the forge.

The decisions are made in `bot/core/proposals.py`; this module only asks the forge what
exists, performs each decision, and returns what was done for reports and `--json`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.config import Config, Identity
from bot.core.outcome import BuildResult
from bot.core.prereqs import FinderResult
from bot.core.proposals import Action, Decision, ManifestFile, decide, desired_proposals
from bot.errors import ForgeError, SetupError, UsageError
from bot.manifest.load import LoadedManifest
from bot.ports import Forge, MergeRequest


@dataclass(frozen=True)
class ProposalAction:
    """One proposal after the pass: what was done to it and where it is."""

    action: Action
    manifest: str
    xsa: int
    branch: str
    reason: str
    title: str | None = None
    draft: bool | None = None
    id: int | None = None
    url: str | None = None
    state: str | None = None  # the merge request's state afterwards
    error: str | None = None  # the forge refused; the other proposals still went ahead

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def sync_proposals(
    forge: Forge,
    manifests_repo_root: Path,
    manifests: Sequence[LoadedManifest],
    results: Mapping[str, BuildResult],
    found: Mapping[tuple[str, int], FinderResult],
    identity: Identity,
    *,
    unreadable: Collection[str] = (),
) -> list[ProposalAction]:
    """Open, update or close the bot's proposals so they match this pass.

    `results` by manifest name (manifests not built this pass are left alone), `found` by
    (manifest name, XSA) for the blocked XSAs the finder ran on, `unreadable`: names of
    manifests that exist but failed to load (their proposals are kept, not closed).
    """
    files = [_manifest_file(manifests_repo_root, m) for m in manifests]
    existing: dict[int, MergeRequest] = {mr.id: mr for mr in forge.list_open()}
    for branch in desired_proposals(files, results, found, bot=identity.name):
        mr = forge.find(branch)
        if mr is not None:
            existing[mr.id] = mr
    decisions = decide(
        files, results, found, list(existing.values()), unreadable=unreadable, bot=identity.name
    )
    return [_carry_out(forge, d) for d in decisions]


def _carry_out(forge: Forge, d: Decision) -> ProposalAction:
    mr = d.existing
    try:
        if d.action == "open" and d.proposal is not None:
            mr = forge.open(d.proposal)
        elif d.action == "update" and d.proposal is not None and mr is not None:
            mr = forge.update(mr, d.proposal)
        elif d.action == "close" and mr is not None:
            forge.close(mr, d.comment)
            mr = forge.find(mr.branch) or mr
    except ForgeError as exc:
        return _action(d, mr, error=str(exc))
    return _action(d, mr)


def _action(d: Decision, mr: MergeRequest | None, error: str | None = None) -> ProposalAction:
    return ProposalAction(
        action=d.action,
        manifest=d.manifest,
        xsa=d.xsa,
        branch=d.branch,
        reason=d.reason,
        title=d.proposal.title if d.proposal else (mr.title if mr else None),
        draft=d.proposal.draft if d.proposal else (mr.draft if mr else None),
        id=mr.id if mr else None,
        url=mr.url if mr else None,
        state=mr.state if mr else None,
        error=error,
    )


def _manifest_file(root: Path, m: LoadedManifest) -> ManifestFile:
    """The manifest with its path as the forge wants it: relative to the repository top."""
    try:
        path = m.path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise SetupError(f"{m.path} is not inside the manifests repository {root}") from None
    return ManifestFile(name=m.name, path=path, text=m.text, manifest=m.manifest)


def _local(config: Config) -> Forge:
    from bot.forges.local import LocalForge

    return LocalForge(config.manifests, config.state, config.identity)


def _gitlab(config: Config) -> Forge:
    from bot.forges.gitlab import GitLabForge  # python-gitlab is imported only when used

    return GitLabForge.from_config(config)


def _github(config: Config) -> Forge:
    from bot.forges.github import GitHubForge  # PyGithub is imported only when used

    return GitHubForge.from_config(config)


# Forge kinds and how to make each from the config.
FORGES: dict[str, Callable[[Config], Forge]] = {
    "local": _local,
    "gitlab": _gitlab,
    "github": _github,
}


def load_forge(config: Config) -> Forge:
    make = FORGES.get(config.forge.kind)
    if make is None:
        known = ", ".join(sorted(FORGES))
        raise UsageError(f"forge kind {config.forge.kind!r} is not available (known: {known})")
    return make(config)
