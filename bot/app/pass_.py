"""One pass over the manifests: fetch, build what changed, check, publish each mirror atomically.

A broken manifest stops that branch only; a tree whose upstream or mirror cannot be reached
stops that tree's branches only; a branch whose new build would withdraw a published XSA, or
that someone else moved, keeps its tip while the others publish. Unchanged inputs (the digest
in the published build record) cost no build at all.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.app.lint import repository_problems
from bot.app.searches import Searched, Searcher, explained
from bot.app.wiring import DEFAULT, Adapters
from bot.config import Config
from bot.core.outcome import BuildResult
from bot.core.ports import Check, NoProgress, Progress
from bot.core.publish import (
    Action,
    Removal,
    Withdrawal,
    changes,
    decide,
    moved_by_someone_else,
    pseudo_merge_message,
    removals,
)
from bot.core.record import (
    BuildRecord,
    CheckRunRecord,
    UnreadableRecord,
    inputs_digest,
    make_record,
    note_text,
)
from bot.core.refs import UPSTREAM_COPIES, WritableRefs, upstream_copy_ref
from bot.core.reports import (
    BranchReport,
    CheckReport,
    CheckRun,
    PassReport,
    WouldWithdraw,
    from_record,
)
from bot.errors import Problem, SetupError, XsabotError
from bot.git.build import ENGINE, Builder
from bot.git.commits import parse_commit
from bot.git.objects import ObjectStore
from bot.git.promises import WALK_LIMIT, BaseChanges, last_recorded_tip
from bot.git.publish import (
    PushResult,
    RefUpdate,
    notes_commit,
    point_head,
    pseudo_merge,
    read_note,
    read_record,
)
from bot.git.workrepo import NOTES, WorkRepo, is_local
from bot.manifest.load import LoadedManifest, display_path, load_manifests
from bot.manifest.model import Manifest
from bot.manifest.where import places

log = logging.getLogger(__name__)


@dataclass
class TreePass:
    """What one tree's pass made: kept for the steps after publishing (proposals)."""

    work: WorkRepo
    store: ObjectStore
    builder: Builder
    adapters: Adapters
    results: dict[str, BuildResult] = field(default_factory=dict)
    check: Check | None = None  # made on first use: most passes build nothing
    searched: dict[str, Searched] = field(default_factory=dict)  # prerequisite searches
    # The mirror's notes ref after this pass, and whether the pass's push (if any) went
    # through: where the proposal step reads the records and writes what it worked out.
    notes: str | None = None
    pushed: bool = True

    def check_for(self, config: Config, tree: str) -> Check:
        if self.check is None:
            self.check = self.adapters.check(config, tree, self.work)
        return self.check


# Called with each tree's reports right before its push (`bot.app.notify.Notifier.stage`):
# the ref updates it returns go into the same atomic push.
Stage = Callable[[str, WorkRepo, ObjectStore, list[BranchReport]], list[RefUpdate]]


@dataclass
class PassOutcome:
    report: PassReport
    manifests: list[LoadedManifest]
    trees: dict[str, TreePass]


def run_pass(
    config: Config,
    *,
    publish: bool,
    progress: Progress | None = None,
    adapters: Adapters = DEFAULT,
    stage: Stage | None = None,
) -> PassOutcome:
    progress = progress or NoProgress()
    mset = load_manifests(config.manifests, namespace=config.namespace, trees=config.trees.keys())
    # Every manifest is read (the checks across them, the proposals of the others, which a
    # pass without their build leaves alone); only those of `--manifests GLOB`/`--shard` build.
    reports: list[BranchReport] = [
        BranchReport(
            manifest=path.stem,
            path=str(path),
            action="error",
            problems=tuple(str(p) for p in problems),
        )
        for path, problems in sorted(mset.invalid.items())
        if config.builds(path)
    ]
    by_tree: dict[str, list[LoadedManifest]] = defaultdict(list)
    for loaded in mset.loaded:
        if config.builds(loaded.path):
            by_tree[loaded.manifest.tree].append(loaded)
    trees: dict[str, TreePass] = {}
    environment_failed = False
    for tree, items in sorted(by_tree.items()):
        try:
            tree_pass, tree_reports = _pass_tree(
                config, tree, items, publish, progress, adapters, stage
            )
            trees[tree] = tree_pass
        except XsabotError as exc:
            # Info, not a warning: the report prints it once (every branch of the tree has it).
            log.info("tree %s: %s", tree, exc)
            # The other trees still go on; the exit status says the environment is at fault.
            environment_failed = environment_failed or isinstance(exc, SetupError)
            tree_reports = [
                BranchReport(
                    manifest=m.name,
                    path=str(m.path),
                    action="error",
                    branch=m.manifest.branch,
                    base=m.manifest.base,
                    problems=(str(exc),),
                )
                for m in items
            ]
        reports.extend(tree_reports)
    reports.sort(key=lambda r: r.manifest)
    report = PassReport(branches=tuple(reports), environment_failed=environment_failed)
    return PassOutcome(report, list(mset.loaded), trees)


def _pass_tree(
    config: Config,
    tree: str,
    items: list[LoadedManifest],
    publish: bool,
    progress: Progress,
    adapters: Adapters,
    stage: Stage | None = None,
) -> tuple[TreePass, list[BranchReport]]:
    work = WorkRepo.for_tree(config.state, tree)
    with progress.step(f"fetching {tree} upstream"):
        work.fetch_upstream(config.upstream_of(tree))
    mirror = config.mirror_of(tree)
    with progress.step(f"fetching {tree} mirror"):
        work.fetch_mirror(mirror, config.namespace, create=publish)
    store = ObjectStore(work.repo)
    builder = Builder(work.repo, store, config.identity, patch_cache=config.state / "patches")
    tree_pass = TreePass(work, store, builder, adapters)
    notes = tree_pass.notes = work.mirror_notes()
    reports: list[BranchReport] = []
    updates: list[RefUpdate] = []
    new_records: dict[str, list[BuildRecord]] = defaultdict(list)
    for n, loaded in enumerate(items, 1):
        with progress.step(f"building {loaded.name}", of=(n, len(items))):
            report, update, note = _plan_branch(config, tree_pass, notes, loaded, publish)
        reports.append(report)
        if update is not None:
            updates.append(update)
        if note is not None:
            new_records[note[0]].append(note[1])
    new_notes = {
        commit: note_text(read_note(work, commit, notes), records)
        for commit, records in new_records.items()
    }
    copies: list[RefUpdate] = []
    if publish and config.trees[tree].copy_upstream_refs:
        copies = _upstream_copies(work, mirror, items)
        updates += copies
    if publish and stage is not None:
        updates += stage(tree, work, store, reports)
    if publish and (new_notes or updates):
        ident = config.identity
        notes_after = notes
        if new_notes:
            notes_after = notes_commit(
                store, old=notes, notes=new_notes, name=ident.name, email=ident.email
            )
            updates.append(RefUpdate(NOTES, notes_after, notes))
        with progress.step(f"publishing to the {tree} mirror"):
            store.flush()
            writable = WritableRefs.of(config.namespace, [u.ref for u in copies])
            result = adapters.push(work, mirror, updates, writable=writable)
        tree_pass.pushed = result.ok
        if result.ok:
            tree_pass.notes = notes_after
        moved = {f"refs/heads/{r.branch}" for r in reports} & {u.ref for u in updates}
        reports = [_after_push(r, result, moved) for r in reports]
        if not result.ok:
            return tree_pass, reports
    if publish and is_local(mirror):  # a clone checks out the newest line, not a missing HEAD
        point_head(mirror, config.namespace)
    return tree_pass, reports


def _after_push(report: BranchReport, result: PushResult, moved: set[str]) -> BranchReport:
    """Mark what the push published; a failed push is an error for each branch it would move
    (and a problem for all when it would move only notes or upstream copies)."""
    mine = f"refs/heads/{report.branch}" in moved
    if result.ok:
        return report.model_copy(update={"published": True}) if mine else report
    if mine:
        problems = (*report.problems, result.message)
        return report.model_copy(update={"action": "error", "problems": problems})
    if not moved:
        return report.model_copy(update={"problems": (*report.problems, result.message)})
    return report


def _upstream_copies(work: WorkRepo, mirror: str, items: list[LoadedManifest]) -> list[RefUpdate]:
    """Upstream's RELEASE-* tags and the manifests' source branches, copied into the mirror
    under `refs/xsabot/upstream/` (never over a ref of the mirror's own, `core.refs`): a
    missing copy is created and a branch copy fast-forwarded; a tag copy is never moved, and
    a branch copy that upstream no longer extends (a rewound upstream) is left alone."""
    upstream = work.upstream_refs("tags/RELEASE-*")
    for source in sorted({m.manifest.source for m in items}):
        tip = work.upstream(source, "heads")
        if tip is not None:
            upstream[f"refs/heads/{source}"] = tip
    wanted = {upstream_copy_ref(ref): sha for ref, sha in upstream.items()}
    current = work.remote_refs(mirror, [UPSTREAM_COPIES + "*"])
    copies = []
    for ref, sha in sorted(wanted.items()):
        old = current.get(ref)
        if old == sha:
            continue
        if old is not None and (
            ref.startswith(UPSTREAM_COPIES + "tags/") or not work.is_ancestor(old, sha)
        ):
            log.warning("upstream copy %s left alone: it is at %s, upstream at %s", ref, old, sha)
            continue
        copies.append(RefUpdate(ref, sha, old))
    return copies


def _plan_branch(
    config: Config, tree_pass: TreePass, notes: str | None, loaded: LoadedManifest, publish: bool
) -> tuple[BranchReport, RefUpdate | None, tuple[str, BuildRecord] | None]:
    """Build one manifest's branch if its inputs changed, and decide how to publish it.

    The branch keeps its tip (action `kept`) when that tip is not the bot's (no record of
    the branch on it: someone else moved it), or when the build would withdraw an XSA the
    tip's record holds that neither the manifest nor the new base lets go (`removals`)."""
    work, store, builder = tree_pass.work, tree_pass.store, tree_pass.builder
    m = loaded.manifest
    head = BranchReport(
        manifest=loaded.name, path=str(loaded.path), action="error", branch=m.branch, base=m.base
    )
    located = repository_problems(work, loaded, notes)  # what `lint --fetch` says, by line
    if located:
        return _stopped(work, notes, loaded, head, located), None, None
    base_commit = work.upstream(m.base, "tags")
    source_commit = work.upstream(m.source, "heads")
    missing = [
        f"{what} {name!r} not found in the {m.tree} upstream"
        for what, name, sha in (
            ("base tag", m.base, base_commit),
            ("source branch", m.source, source_commit),
        )
        if sha is None
    ]
    if missing or base_commit is None or source_commit is None:
        return head.model_copy(update={"problems": tuple(missing)}), None, None
    digest = inputs_digest(
        m,
        base_commit=base_commit,
        committer=(config.identity.name, config.identity.email),
        bot_version=ENGINE,
        check=f"{config.trees[m.tree].check_via}:{config.trees[m.tree].check_text or ''}"
        if config.trees[m.tree].gated
        else None,
    )
    published = work.mirror_branch(m.branch)
    found = read_record(work, published, notes, m.branch) if published else None
    if published and found is None:  # not the bot's tip: someone else's, left alone
        last = last_recorded_tip(work, published, notes, m.branch)
        problem = moved_by_someone_else(
            m.branch, published, last, looked=WALK_LIMIT, no_notes=notes is None
        )
        moved = {
            "action": "kept",
            "tip": published,
            "previous": published,
            "problems": (problem,),
        }
        return head.model_copy(update=moved), None, None
    old = found if isinstance(found, BuildRecord) else None
    if published and old and old.inputs == digest and not old.stale_for(source_commit):
        fields = {"action": "none", "tip": published, "previous": published, **from_record(old)}
        return head.model_copy(update=fields), None, None
    settings = config.trees[m.tree]
    check_report: CheckReport | None = None
    if settings.gated and not publish:
        # A plan runs no check: it may be planning an unmerged merge request, whose content
        # (an advisory patch, say) must not run in a process that holds the forge token; and
        # forge CI would need candidate refs pushed. The plan says what it did not do.
        check_report = CheckReport(
            command=settings.check_text, passed=None, skipped="a plan runs no check"
        )
        result = builder.build(
            m, manifests_root=config.manifests, base_commit=base_commit, source_commit=source_commit
        )
    elif settings.gated:
        from bot.check.runner import CheckTimedOut

        try:
            result, check_report = _gated_build(
                config, tree_pass, builder, m, base_commit, source_commit
            )
        except CheckTimedOut as exc:  # says nothing about any XSA: publish nothing, try again
            return head.model_copy(update={"problems": (str(exc),)}), None, None
        if check_report.base_fails:
            problem = f"the base {m.base} fails the check itself; nothing is published"
            fields = {"problems": (problem,), "check": check_report}
            return head.model_copy(update=fields), None, None
    else:
        result = builder.build(
            m, manifests_root=config.manifests, base_commit=base_commit, source_commit=source_commit
        )
    # What the blocked XSAs need (waits-for, no set, a bound) goes into the report and record.
    searcher = Searcher(work, store, builder, config.manifests)
    searched = tree_pass.searched[loaded.name] = searcher.search(loaded.name, m, result)
    result = explained(result, searched)
    tree_pass.results[loaded.name] = result
    record = make_record(
        name=loaded.name,
        manifest=m,
        inputs=digest,
        result=result,
        bot=ENGINE,
        checks=tuple(CheckRunRecord(**r.to_json()) for r in check_report.runs)
        if check_report
        else (),
    )
    removed: list[Removal] = []
    if old is not None:
        removed, withdrawn = removals(old, record, m, BaseChanges(work, old, result.base_commit))
        if withdrawn:  # the published tip's promise stands: keep it, say what would go
            kept = {
                "action": "kept",
                "tip": published,
                "previous": published,
                "rebuilt": True,
                "check": check_report,
                **from_record(record),
                "would_withdraw": _would_withdraw(loaded, withdrawn),
            }
            return head.model_copy(update=kept), None, None
    if old is not None and old.build == result.tip:
        action: Action = "none"  # the same build, published already: only the record changes
    else:
        extends = published is not None and _extends(work, store, result, published)
        action = decide(published, result.tip, extends)
    tip = published if action == "none" and published else result.tip
    if action == "pseudo-merge":
        assert published is not None
        tip = pseudo_merge(
            store,
            published=published,
            build=result.tip,
            message=pseudo_merge_message(m.branch, result.tip, old, record, removed),
            name=config.identity.name,
            email=config.identity.email,
        )
    unreadable = found.why if isinstance(found, UnreadableRecord) else ""
    fields = {
        "action": action,
        "tip": tip,
        "previous": published,
        "rebuilt": True,
        "check": check_report,
        "changes": tuple(changes(old, record, unreadable=unreadable, removed=removed))
        if published
        else (),
        **from_record(record),
    }
    report = head.model_copy(update=fields)
    update = RefUpdate(f"refs/heads/{m.branch}", tip, published) if tip != published else None
    return report, update, (tip, record)


def _stopped(
    work: WorkRepo,
    notes: str | None,
    loaded: LoadedManifest,
    head: BranchReport,
    located: tuple[Problem, ...],
) -> BranchReport:
    """A branch the repository checks stop before building: it keeps its tip, and each XSA
    the tip holds whose entry has a finding is named as what publishing would withdraw."""
    fields: dict[str, object] = {"problems": tuple(map(str, located))}
    m = loaded.manifest
    published = work.mirror_branch(m.branch)
    record = read_record(work, published, notes, m.branch) if published else None
    if isinstance(record, BuildRecord):
        held = {x.xsa for x in record.xsas if x.state in ("applied", "already-applied")}
        withdrawn: dict[int, Withdrawal] = {}
        for problem in located:
            index = re.match(r"xsas\[(\d+)\]", problem.field)
            xsa = m.xsas[int(index[1])].xsa if index else None
            if xsa in held and xsa not in withdrawn:
                withdrawn[xsa] = Withdrawal(xsa, f"{problem.field}: {problem.message}")
        if withdrawn:
            fields |= {
                "action": "kept",
                "tip": published,
                "previous": published,
                "would_withdraw": _would_withdraw(loaded, list(withdrawn.values())),
            }
    return head.model_copy(update=fields)


def _would_withdraw(
    loaded: LoadedManifest, withdrawn: list[Withdrawal]
) -> tuple[WouldWithdraw, ...]:
    """The withdrawals as reported, each with where the manifest lists the XSA."""
    index = {x.xsa: i for i, x in enumerate(loaded.manifest.xsas)}
    entries = {w.xsa: ("xsas", index[w.xsa]) for w in withdrawn if w.xsa in index}
    where = places(loaded.text, entries.values())
    shown = display_path(loaded.path)
    return tuple(
        WouldWithdraw(xsa=w.xsa, why=w.why, where=f"{shown}:{where[entries[w.xsa]][0]}")
        if w.xsa in entries
        else WouldWithdraw(xsa=w.xsa, why=w.why, where=shown)
        for w in withdrawn
    )


def _gated_build(
    config: Config,
    tree_pass: TreePass,
    builder: Builder,
    m: Manifest,
    base_commit: str,
    source_commit: str,
) -> tuple[BuildResult, CheckReport]:
    """Build, then hold back every XSA that breaks the check (each found by bisection), in
    this one pass; the report says what the checks cost and what they did not compile."""
    from bot.check.gate import BuilderGate
    from bot.check.runner import CheckRunner
    from bot.core.gate import gate

    runner = tree_pass.check_for(config, m.tree)
    port = BuilderGate(
        builder,
        runner,
        m,
        manifests_root=config.manifests,
        base_commit=base_commit,
        source_commit=source_commit,
    )
    started = runner.runs
    first = len(runner.history) if isinstance(runner, CheckRunner) else 0
    outcome = gate(port)
    runs = check_runs(runner, since=first)
    report = CheckReport(
        command=runner.command,
        passed=outcome.passed,
        base_fails=outcome.base_fails,
        held_back=tuple(b.xsa for b in outcome.blocked),
        checks_run=runner.runs - started,
        seconds=round(sum(r.seconds for r in runs), 3),
        runs=runs,
        trees_checked=tuple(outcome.trees_checked),
    )
    return port.gated_result(outcome), report


def check_runs(runner: Check | None, *, since: int = 0) -> tuple[CheckRun, ...]:
    """The checks `runner` ran after its first `since`, as reported (the bot's own runner
    keeps them; forge CI's runs are the forge's)."""
    from bot.check.runner import CheckRunner

    if not isinstance(runner, CheckRunner):
        return ()
    return tuple(
        CheckRun(
            tree=r.tree, seconds=round(r.seconds, 3), incremental=r.incremental, passed=r.passed
        )
        for r in runner.history[since:]
    )


def _extends(work: WorkRepo, store: ObjectStore, result: BuildResult, published: str) -> bool:
    """Whether `published` is an ancestor of the build, whose new commits are still in memory."""
    commit = result.tip
    while commit != result.base_commit:
        if commit == published:
            return True
        commit = parse_commit(store.read(commit)[1]).parents[0]
    return work.is_ancestor(published, result.base_commit)
