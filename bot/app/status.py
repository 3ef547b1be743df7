"""`status`: what each published branch holds, from the mirror's build records.

Reads only the mirror (no upstream fetch, no build, and a missing mirror is not made): the
branches, their tips, the XSAs each holds or lacks and why, and the bot's open proposals.
The CLI prints it; the service's status page will show the same report.
"""

from __future__ import annotations

import logging

from bot.app.wiring import DEFAULT, Adapters
from bot.config import Config
from bot.core.publish import moved_by_someone_else
from bot.core.record import BuildRecord, UnreadableRecord
from bot.core.reports import BranchReport, OpenProposal, StatusReport, from_record
from bot.errors import SetupError
from bot.git.promises import WALK_LIMIT, last_recorded_tip
from bot.git.publish import read_record
from bot.git.workrepo import WorkRepo
from bot.manifest.load import load_manifests

log = logging.getLogger(__name__)


def status(config: Config, adapters: Adapters = DEFAULT) -> StatusReport:
    return StatusReport(
        branches=tuple(branch_status(config)), proposals=tuple(open_proposals(config, adapters))
    )


def branch_status(config: Config) -> list[BranchReport]:
    mset = load_manifests(config.manifests, namespace=config.namespace, trees=config.trees.keys())
    reports: list[BranchReport] = []
    works: dict[str, WorkRepo] = {}
    for loaded in mset.loaded:
        m = loaded.manifest
        work = works.get(m.tree)
        if work is None:
            work = works[m.tree] = WorkRepo.for_tree(config.state, m.tree)
            work.fetch_mirror(config.mirror_of(m.tree), config.namespace, create=False)
        tip = work.mirror_branch(m.branch)
        notes = work.mirror_notes()
        record = read_record(work, tip, notes, m.branch) if tip else None
        fields = from_record(record) if isinstance(record, BuildRecord) else {"base": m.base}
        if tip is None:
            problems: tuple[str, ...] = ("not published yet",)
        elif record is None:  # a tip the bot did not publish
            last = last_recorded_tip(work, tip, notes, m.branch)
            problems = (
                moved_by_someone_else(
                    m.branch, tip, last, looked=WALK_LIMIT, no_notes=notes is None
                ),
            )
        elif isinstance(record, UnreadableRecord):
            problems = (record.problem,)
        else:
            problems = ()
        reports.append(
            BranchReport(
                manifest=loaded.name,
                path=str(loaded.path),
                action="none",
                branch=m.branch,
                tip=tip,
                problems=problems,
                published=tip is not None,
                **fields,
            )
        )
    for path, found in sorted(mset.invalid.items()):
        reports.append(
            BranchReport(
                manifest=path.stem,
                path=str(path),
                action="error",
                problems=tuple(map(str, found)),
            )
        )
    return sorted(reports, key=lambda r: r.manifest)


def open_proposals(config: Config, adapters: Adapters = DEFAULT) -> list[OpenProposal]:
    try:
        forge = adapters.forge(config)
        open_ones = forge.list_open()
    except SetupError as exc:  # e.g. manifests not in a git repository: no local proposals
        log.info("no proposals: %s", exc)
        return []
    return [
        OpenProposal(id=mr.id, branch=mr.branch, title=mr.title, draft=mr.draft, url=mr.url)
        for mr in open_ones
    ]
