"""From blocked XSAs to the bot's merge requests, and which forge they go to.

`converge` is the proposal step of every `reconcile`: what proposals should exist follows
from durable state (the manifests, and the build records in the mirror), not from whether
this pass rebuilt anything. A manifest built this pass has its proposals worked out from the
pass's searches; one that was not is held against what its record
says it wants (`ProposalsRecord`), with one listing of the bot's open merge requests, and is
worked out again (rebuilt in memory, searched) only when the forge differs or its record
has no answer yet. What was worked out is written back into the records (a notes-only push,
`bot/app/reconcile.py`), so a pass killed or failing halfway is completed by the next.

The searches are the pass's own (`bot/app/searches.py`), with the check's added for the XSAs
the gate held back (`_search`); the decisions (open, update, keep, close) are made in
`bot/core/proposals.py`; `sync_proposals` asks the forge what exists, performs each decision,
and returns what was done for reports and JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.app.pass_ import PassOutcome, TreePass
from bot.app.searches import Searched, Searcher, explained
from bot.app.wiring import DEFAULT, Adapters
from bot.config import Config, Identity
from bot.core.outcome import DOES_NOT_BUILD, Blocked, BuildResult, XsaOutcome
from bot.core.ports import (
    Forge,
    MergedProposal,
    MergeRequest,
    NoProgress,
    Progress,
    Proposal,
    TidiesMerged,
)
from bot.core.prereqs import FinderResult
from bot.core.proposals import (
    Decision,
    ManifestFile,
    decide,
    desired_proposals,
    parse_proposal_branch,
    proposals_basis,
    settled,
)
from bot.core.record import BuildRecord, ProposalsRecord
from bot.core.reports import BranchReport, ProposalAction
from bot.errors import ForgeError, SetupError, XsabotError
from bot.git.publish import read_record
from bot.manifest import edit
from bot.manifest.load import LoadedManifest
from bot.manifest.model import Manifest

log = logging.getLogger(__name__)
Wanted = dict[str, tuple[ManifestFile, int, Proposal]]


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
    wanted = desired_proposals(files, results, found, bot=identity.name)
    return _sync(
        forge,
        files,
        results,
        found,
        wanted,
        forge.list_open(),
        unreadable=unreadable,
        bot=identity.name,
    )


def _sync(
    forge: Forge,
    files: Sequence[ManifestFile],
    results: Mapping[str, BuildResult],
    found: Mapping[tuple[str, int], FinderResult],
    wanted: Wanted,
    open_mrs: Sequence[MergeRequest],
    *,
    unreadable: Collection[str],
    bot: str,
) -> list[ProposalAction]:
    """Carry out the decisions for `wanted` against the bot's open merge requests `open_mrs`
    (one listing); the forge is asked about a wanted branch only when it has no open one."""
    existing: dict[int, MergeRequest] = {mr.id: mr for mr in open_mrs}
    open_branches = {mr.branch for mr in open_mrs}
    for branch in wanted:
        if branch not in open_branches:
            mr = forge.find(branch)
            if mr is not None:
                existing[mr.id] = mr
    decisions = decide(
        files,
        results,
        found,
        list(existing.values()),
        unreadable=unreadable,
        bot=bot,
        wanted=wanted,
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


def _tidy_merged(forge: Forge, open_mrs: Sequence[MergeRequest]) -> list[ProposalAction]:
    """The bot's proposals merged since the last pass, told of once (`TidiesMerged`): the
    forge records them merged and removes their branches."""
    if not isinstance(forge, TidiesMerged):
        return []
    return [_merged_action(m) for m in forge.tidy_merged(open_mrs)]


def _merged_action(m: MergedProposal) -> ProposalAction:
    parsed = parse_proposal_branch(m.mr.branch)
    manifest, xsa = parsed if parsed is not None else ("", 0)
    reason = "branch removed" if m.branch_removed else "branch kept (it has commits not the bot's)"
    return ProposalAction(
        action="merged",
        manifest=manifest,
        xsa=xsa,
        branch=m.mr.branch,
        reason=reason,
        title=m.mr.title,
        draft=m.mr.draft,
        id=m.mr.id,
        url=m.mr.url,
        state="merged",
    )


@dataclass(frozen=True)
class Derived:
    """One manifest's proposals as its build and searches say they should be."""

    file: ManifestFile
    result: BuildResult
    found: dict[tuple[str, int], FinderResult]
    wanted: Wanted
    basis: str

    @property
    def record(self) -> ProposalsRecord:
        """What its build record keeps of it."""
        hashes = {branch: p.content_hash() for branch, (_, _, p) in self.wanted.items()}
        return ProposalsRecord(basis=self.basis, wanted=dict(sorted(hashes.items())))


@dataclass
class Converged:
    """What the proposal step did, what kept it from doing more, and what it worked out
    for the records (by tree: manifest name -> (published tip, record with its proposals))."""

    actions: list[ProposalAction] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    records: dict[str, dict[str, tuple[str, BuildRecord]]] = field(default_factory=dict)


def converge(
    config: Config,
    outcome: PassOutcome,
    progress: Progress | None = None,
    adapters: Adapters = DEFAULT,
) -> Converged:
    """Make the bot's merge requests what the manifests and the build records ask for.

    Cheap when nothing changed: one listing of the bot's open merge requests, held against
    each record's `proposals`. Raises `SetupError` when there is no forge (or no manifests
    repository) but a blocked XSA might want a proposal; errors of single merge requests
    are in their actions, and a forge that fails as a whole is in `errors`."""
    from bot.forges.local import manifests_repository

    progress = progress or NoProgress()
    out = Converged()
    states = _manifest_states(outcome)
    try:
        root = manifests_repository(config.manifests)
        forge = adapters.forge(config)
    except SetupError as exc:
        if any(_has_blocked(state) for state in states.values()):
            raise
        # Nothing is blocked: closing moot proposals waits for a working forge.
        log.warning("proposals skipped: %s", exc)
        return out
    bot = config.identity.name
    files = {name: _manifest_file(root, state.loaded) for name, state in states.items()}
    derived: dict[str, Derived] = {}
    checked: dict[str, Mapping[str, str]] = {}  # manifests whose record has the answer

    def work_out(name: str) -> None:
        try:
            derived[name] = _derive(config, states[name], files[name], bot, progress)
        except XsabotError as exc:  # this manifest's proposals wait; the others go on
            out.errors.append(f"proposals of {name}: {exc}")

    for name, state in states.items():
        record = state.record
        kept = record.proposals if record is not None else None
        if state.fresh or record is None or kept is None:
            work_out(name)
        elif kept.basis != proposals_basis(files[name], bot=bot) and record.states("blocked"):
            work_out(name)  # the texts may change (a comment, say); with nothing blocked, none
        else:
            checked[name] = kept.wanted
    loaded = {m.name for m in outcome.manifests}
    unreadable = {p.stem for p in config.manifests.glob("*.y*ml") if p.stem not in loaded}
    try:
        open_mrs = forge.list_open()
        out.actions = _tidy_merged(forge, open_mrs)
        by_manifest: dict[str, list[MergeRequest]] = {}
        for mr in open_mrs:
            parsed = parse_proposal_branch(mr.branch)
            if parsed is not None:
                by_manifest.setdefault(parsed[0], []).append(mr)
        for name, wanted in checked.items():
            mine = by_manifest.get(name, [])
            listed = {mr.branch for mr in mine}
            newest = {b: forge.find(b) for b in wanted if b not in listed}
            if not settled(wanted, mine, newest):
                work_out(name)
        # Judged: the open merge requests of the manifests worked out this pass, and of
        # manifests that no longer exist; the others are left as they are.
        judged = [
            mr
            for name, mrs in by_manifest.items()
            if name in derived or (name not in loaded and name not in unreadable)
            for mr in mrs
        ]
        if derived or judged:
            with progress.step("updating proposals"):
                out.actions += _sync(
                    forge,
                    [d.file for d in derived.values()],
                    {name: d.result for name, d in derived.items()},
                    {key: f for d in derived.values() for key, f in d.found.items()},
                    {b: w for d in derived.values() for b, w in d.wanted.items()},
                    judged,
                    unreadable=unreadable,
                    bot=bot,
                )
    except ForgeError as exc:  # the forge as a whole: the next pass tries again
        out.errors.append(f"proposals: {exc}")
    for name, d in derived.items():
        state = states[name]
        if state.record is not None and state.record.proposals != d.record:
            updated = state.record.model_copy(update={"proposals": d.record})
            tree = state.loaded.manifest.tree
            out.records.setdefault(tree, {})[name] = (state.tip, updated)
    return out


def derive_proposals(
    config: Config, outcome: PassOutcome, progress: Progress | None = None
) -> dict[str, Derived]:
    """The proposals of every manifest the pass built, worked out (searches and texts) and
    not sent anywhere: what `converge` does for them before it asks the forge."""
    from bot.forges.local import manifests_repository

    root = manifests_repository(config.manifests)
    bot, progress = config.identity.name, progress or NoProgress()
    return {
        name: _derive(config, state, _manifest_file(root, state.loaded), bot, progress)
        for name, state in _manifest_states(outcome).items()
        if state.fresh is not None
    }


@dataclass(frozen=True)
class _State:
    """A manifest as the proposal step finds it after the pass."""

    loaded: LoadedManifest
    tree_pass: TreePass
    fresh: BuildResult | None  # built this pass
    tip: str  # its published tip, where `record` is
    record: BuildRecord | None  # the record there, if it is this build's (None: it is not)


def _manifest_states(outcome: PassOutcome) -> dict[str, _State]:
    """The manifests whose build the proposal step knows: built this pass, or unchanged with
    a record in the mirror. A manifest whose tree or branch failed is left out (and so are
    its proposals: nothing is known about it)."""
    reports = {r.manifest: r for r in outcome.report.branches}
    states: dict[str, _State] = {}
    for loaded in outcome.manifests:
        tree_pass = outcome.trees.get(loaded.manifest.tree)
        report = reports.get(loaded.name)
        if tree_pass is None or report is None:
            continue
        fresh = tree_pass.results.get(loaded.name)
        record = _record(tree_pass, report, fresh)
        if fresh is None and record is None:
            continue
        states[loaded.name] = _State(loaded, tree_pass, fresh, report.tip or "", record)
    return states


def _record(
    tree_pass: TreePass, report: BranchReport, fresh: BuildResult | None
) -> BuildRecord | None:
    """The build record the mirror has for the branch after the pass, if it is the one of
    the build the pass has (fresh) or found unchanged."""
    if report.action == "error" or not report.tip or report.branch is None:
        return None
    if fresh is not None and not tree_pass.pushed:
        return None  # the pass's push failed: the mirror still has the old record
    found = read_record(tree_pass.work, report.tip, tree_pass.notes, report.branch)
    if not isinstance(found, BuildRecord):
        return None
    if fresh is not None and found.build != fresh.tip:
        return None
    return found


def _has_blocked(state: _State) -> bool:
    if state.fresh is not None:
        return any(o.state == "blocked" for o in state.fresh.outcomes)
    return state.record is not None and bool(state.record.states("blocked"))


def _derive(
    config: Config, state: _State, file: ManifestFile, bot: str, progress: Progress
) -> Derived:
    """Work one manifest's proposals out: from this pass's build and searches, or else from
    its record, rebuilt in memory and searched as the pass does (nothing is published)."""
    name = state.loaded.name
    result = state.fresh
    if result is None:
        assert state.record is not None
        if not state.record.states("blocked"):
            # Nothing blocked: no proposal is wanted, and the record says what each XSA is.
            result = _result_of(state.record)
        else:
            with progress.step(f"rebuilding {name} for its proposals"):
                result = _rebuild(config, state.tree_pass, state.loaded, state.record)
    found: dict[tuple[str, int], FinderResult] = {}
    if any(o.state == "blocked" for o in result.outcomes):
        searched = _search(config, state.tree_pass, state.loaded, result, progress)
        result = explained(result, searched)
        found = {(name, xsa): finder for xsa, finder in sorted(searched.found.items())}
    wanted = desired_proposals([file], {name: result}, found, bot=bot)
    return Derived(file, result, found, wanted, proposals_basis(file, bot=bot))


def _result_of(record: BuildRecord) -> BuildResult:
    """What a record says of a build with nothing blocked, as a build result (states only)."""
    outcomes = tuple(
        XsaOutcome(x.xsa, x.state)  # type: ignore[arg-type]
        for x in record.xsas
        if x.state in ("applied", "already-applied", "not-affected", "declared-blocked")
    )
    return BuildResult(
        record.base, record.base_commit, record.build, "", outcomes, record.source_commit
    )


def _rebuild(
    config: Config, tree_pass: TreePass, loaded: LoadedManifest, record: BuildRecord
) -> BuildResult:
    """The build a record describes, again, in memory, with the pass's own searches (as
    `bot/app/pass_.py` makes them): the XSAs the check gate held back stay out as the record
    says (no check runs), so the result is the published one."""
    m = loaded.manifest
    source = tree_pass.work.upstream(m.source, "heads") or record.source_commit
    held = {
        x.xsa: Blocked(x.xsa, None, x.paths, DOES_NOT_BUILD, x.detail)
        for x in record.xsas
        if x.state == "blocked" and x.reason == DOES_NOT_BUILD
    }
    if held and config.trees[m.tree].gated:
        tree_pass.check_for(config, m.tree)  # the build-aware search asks the check
    result = tree_pass.builder.build(
        m,
        manifests_root=config.manifests,
        base_commit=record.base_commit,
        source_commit=source,
        leave_out=held,
    )
    if result.tip != record.build:
        log.warning(
            "%s: rebuilt %s, the record says %s; proposing from the rebuild",
            loaded.name,
            result.tip,
            record.build,
        )
    searcher = Searcher(tree_pass.work, tree_pass.store, tree_pass.builder, config.manifests)
    searched = tree_pass.searched[loaded.name] = searcher.search(loaded.name, m, result)
    return explained(result, searched)


def _manifest_file(root: Path, m: LoadedManifest) -> ManifestFile:
    """The manifest with its path as the forge wants it: relative to the repository top."""
    try:
        path = m.path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise SetupError(f"{m.path} is not inside the manifests repository {root}") from None
    return ManifestFile(name=m.name, path=path, text=m.text, manifest=m.manifest, editor=edit)


def _search(
    config: Config,
    tree_pass: TreePass,
    loaded: LoadedManifest,
    result: BuildResult,
    progress: Progress,
) -> Searched:
    """The prerequisite searches of one manifest's blocked XSAs, in manifest order: the pass's
    own (`bot/app/searches.py`), and the check's for the XSAs the gate held back, then for
    those the check holds back once the sets found are merged (`Regate`).

    Each search assumes the sets found for the XSAs before it are merged (a hypothetical
    build, in memory): two proposals never add the same commit, and an XSA that only needed
    an earlier XSA's set gets no proposal of its own. Searches whose assumptions are those
    of the pass are not made twice.
    """
    from bot.check.gate import BuilderGate
    from bot.check.prereqs import find_build_prerequisites
    from bot.core.gate import gate

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
            line=loaded.manifest.branch,
        ).finder

    def regate(manifest: Manifest, held: Mapping[int, Blocked]) -> BuildResult:
        runner = tree_pass.check
        assert runner is not None  # a build search ran: the check is there
        port = BuilderGate(
            tree_pass.builder,
            runner,
            manifest,
            manifests_root=config.manifests,
            base_commit=result.base_commit,
            source_commit=result.source_commit,
        )
        return port.gated_result(gate(port, held_back=frozenset(held)))

    previous = tree_pass.searched.get(loaded.name)
    gated = any(b.reason == DOES_NOT_BUILD for b in result.blocked)
    if previous is not None and not gated:
        return previous
    searcher = Searcher(
        tree_pass.work, tree_pass.store, tree_pass.builder, config.manifests, progress=progress
    )
    return searcher.search(
        loaded.name,
        loaded.manifest,
        result,
        build_search=build_search,
        regate=regate,
        previous=previous,
    )
