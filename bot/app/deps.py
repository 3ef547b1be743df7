"""`deps`: the prerequisites one XSA needs, as the manifest applies it.

Builds the manifest in memory up to that XSA and, when the XSA conflicts (or a pick of it
lands partially), runs the finder on it (all of its picks as the manifest places them, onto the
branch before it; each candidate goes before the XSA commit that follows it on source). The
XSAs blocked before it are offered as a last resort: a fix that needs one of them waits for
it. It answers whether the XSA applies, not whether it builds (`check` does that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.app.branch import prepare
from bot.config import Config
from bot.core.outcome import PARTIAL, BuildResult, XsaOutcome
from bot.core.ports import NoProgress, Progress
from bot.core.prereqs import FinderResult, Limits
from bot.errors import UsageError
from bot.manifest.model import Manifest, Xsa


@dataclass(frozen=True)
class Deps:
    manifest: str  # the manifest's name
    outcome: XsaOutcome  # the XSA as the manifest applies it, after the XSAs before it
    gated: bool  # the tree has a check: an XSA that applies may still not build
    finder: FinderResult | None = None  # None: it applies, or prerequisites cannot help
    subject: str = ""  # of the fix commit that conflicts (with `describe`)


def find_deps(
    config: Config,
    path: Path,
    xsa: int,
    limits: Limits,
    *,
    describe: bool = False,
    progress: Progress | None = None,
) -> Deps:
    from bot.git.prereqs import find_prerequisites
    from bot.git.sourcelog import source_log

    branch = prepare(config, path, progress or NoProgress())
    loaded = branch.loaded
    entry = next((x for x in loaded.manifest.xsas if x.xsa == xsa), None)
    if entry is None:
        raise UsageError(f"{path}: no XSA-{xsa} in this manifest")
    manifest = _tried_as_listed(loaded.manifest, entry)
    built = branch.build(manifest, stop_at=entry.xsa)
    outcome = built.outcomes[-1]
    found = Deps(loaded.name, outcome, gated=config.trees[manifest.tree].gated)
    blocked = outcome.blocked
    if blocked is None or blocked.reason not in ("conflict", PARTIAL) or blocked.commit is None:
        return found
    # The builder rolled the blocked XSA back: `built.tree_id` is the branch before it, where
    # a manifest puts the XSA's prerequisites.
    finder = find_prerequisites(
        branch.work.repo,
        branch.store,
        base_commit=branch.base,
        fix=blocked.commit,
        xsa=entry.xsa,
        ours_tree=built.tree_id,
        on_branch=built.picked_before(entry.xsa),
        limits=limits,
        xsa_commits=[sha for sha, _ in entry.picks()],
        blocked_xsas=_blocked_before(loaded.manifest, built),
        fix_commits=entry.commits,
    )
    subject = source_log(branch.work.repo).get(blocked.commit).subject if describe else ""
    return Deps(found.manifest, outcome, found.gated, finder, subject)


def _tried_as_listed(manifest: Manifest, entry: Xsa) -> Manifest:
    """A manifest whose `status: blocked` XSA is tried anyway if it lists commits: asking for
    its prerequisites is how a volunteer finds out whether it can be unblocked."""
    if entry.status != "blocked" or not entry.commits:
        return manifest
    tried = entry.model_copy(update={"status": None, "why": entry.why})
    xsas = tuple(tried if x.xsa == entry.xsa else x for x in manifest.xsas)
    return manifest.model_copy(update={"xsas": xsas})


def _blocked_before(manifest: Manifest, built: BuildResult) -> dict[int, tuple[str, ...]]:
    """The commits of the XSAs before this one that are not on the branch: blocked by the
    build, or declared blocked in the manifest."""
    commits = {x.xsa: x.commits for x in manifest.xsas}
    return {
        o.xsa: commits[o.xsa]
        for o in built.outcomes[:-1]
        if o.state in ("blocked", "declared-blocked") and commits.get(o.xsa)
    }
