"""From a pass's blocked XSAs to the bot's merge requests, and which forge they go to.

`propose` takes the pass's prerequisite searches (`bot/app/searches.py`) and adds the check's
for the XSAs the gate held back; the decisions (open, update, keep, close) are made in
`bot/core/proposals.py`; `sync_proposals` asks the forge what exists, performs each decision,
and returns what was done for reports and JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from bot.app.pass_ import PassOutcome, TreePass
from bot.app.searches import Searcher
from bot.app.wiring import DEFAULT, Adapters
from bot.config import Config, Identity
from bot.core.outcome import DOES_NOT_BUILD, Blocked, BuildResult
from bot.core.ports import Forge, MergeRequest, NoProgress, Progress
from bot.core.prereqs import FinderResult
from bot.core.proposals import Decision, ManifestFile, decide, desired_proposals
from bot.core.reports import ProposalAction
from bot.errors import ForgeError, SetupError
from bot.manifest import edit
from bot.manifest.load import LoadedManifest

log = logging.getLogger(__name__)


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
    return ManifestFile(name=m.name, path=path, text=m.text, manifest=m.manifest, editor=edit)


def propose(
    config: Config,
    outcome: PassOutcome,
    progress: Progress | None = None,
    adapters: Adapters = DEFAULT,
) -> list[ProposalAction]:
    """Find prerequisites for every XSA a fresh build found blocked (by a conflict, or by the
    check), and make the bot's merge requests match: open, update, close. Returns the
    `ProposalAction`s."""
    from bot.forges.local import manifests_repository

    progress = progress or NoProgress()
    by_name = {m.name: m for m in outcome.manifests}
    results: dict[str, BuildResult] = {}
    found: dict[tuple[str, int], FinderResult] = {}
    for tree_pass in outcome.trees.values():
        for name, result in tree_pass.results.items():
            results[name] = result
            for xsa, finder in _search(config, tree_pass, by_name[name], result, progress):
                found[(name, xsa)] = finder
    try:
        forge = adapters.forge(config)
        root = manifests_repository(config.manifests)
    except SetupError as exc:
        if found:
            raise
        # Nothing to propose this pass; closing moot proposals waits for a working forge.
        log.warning("proposals skipped: %s", exc)
        return []
    unreadable = {p.stem for p in config.manifests.glob("*.y*ml") if p.stem not in by_name}
    with progress.step("updating proposals"):
        return sync_proposals(
            forge, root, outcome.manifests, results, found, config.identity, unreadable=unreadable
        )


def _search(
    config: Config,
    tree_pass: TreePass,
    loaded: LoadedManifest,
    result: BuildResult,
    progress: Progress,
) -> list[tuple[int, FinderResult]]:
    """The prerequisite searches of one manifest's blocked XSAs, in manifest order: the pass's
    own (`bot/app/searches.py`), and the check's for the XSAs the gate held back.

    Each search assumes the sets found for the XSAs before it are merged (a hypothetical
    build, in memory): two proposals never add the same commit, and an XSA that only needed
    an earlier XSA's set gets no proposal of its own. Searches whose assumptions are those
    of the pass are not made twice.
    """
    from bot.check.prereqs import find_build_prerequisites

    def build_search(
        xsa: int, blocked: Blocked, picks: Sequence[str], on_branch: Sequence[str]
    ) -> FinderResult | None:
        runner = tree_pass.check
        if runner is None or not runner.reports_compiler_output or blocked.tree_id is None:
            return None  # a forge's CI gives no compiler output to search from
        return find_build_prerequisites(
            tree_pass.work.repo,
            tree_pass.store,
            runner,
            base_commit=result.base_commit,
            fix=picks[-1],
            xsa=xsa,
            ours_tree=blocked.tree_id,
            errors=blocked.detail,
            on_branch=on_branch,
            xsa_commits=picks,
        ).finder

    previous = tree_pass.searched.get(loaded.name)
    gated = any(b.reason == DOES_NOT_BUILD for b in result.blocked)
    if previous is not None and not gated:
        return sorted(previous.found.items())
    searcher = Searcher(
        tree_pass.work, tree_pass.store, tree_pass.builder, config.manifests, progress=progress
    )
    searched = searcher.search(
        loaded.name, loaded.manifest, result, build_search=build_search, previous=previous
    )
    return sorted(searched.found.items())
