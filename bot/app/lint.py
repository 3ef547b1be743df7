"""The `lint` use case, and the repository checks every pass runs before building a branch.

Plain lint reads the files only: no git, no network, a fraction of a second. With the upstream
(`lint --fetch`, or `--upstream`) each tree's upstream is fetched into the work repository
the pass uses (no extra clone), and its mirror read, and the manifests are also checked against
them (`bot/git/lint.py` has the rules). A mirror that cannot be reached only skips the
comparison with the published base, with a note; an upstream that cannot be reached leaves
that tree's manifests unchecked against it and is an environment failure (exit 2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Config
from bot.core.ports import NoProgress, Progress
from bot.errors import Problem, UsageError, XsabotError
from bot.manifest.load import LoadedManifest, ManifestSet, display_path, load_manifests

if TYPE_CHECKING:
    from bot.git.workrepo import WorkRepo


@dataclass(frozen=True)
class LintResult:
    checked: int  # manifest files read
    problems: tuple[Problem, ...]  # by file, then by place in it
    broken: int  # files with at least one problem
    notes: tuple[str, ...] = ()  # what could not be checked, and why
    environment_failed: bool = False

    @property
    def exit_status(self) -> int:
        if self.environment_failed:
            return 2
        return 1 if self.problems else 0


def lint(
    config: Config,
    paths: Sequence[Path] = (),
    *,
    upstream: bool = False,
    progress: Progress | None = None,
) -> LintResult:
    """Check the manifests in `paths` (files or directories; none: the manifests directory),
    and with `upstream` against each tree's upstream and mirror too."""
    sets = [
        load_manifests(root, namespace=config.namespace, trees=config.trees.keys(), paths=files)
        for root, files in _groups(paths, config.manifests).items()
    ]
    found: dict[Path, list[Problem]] = defaultdict(list)
    for mset in sets:
        for path, problems in mset.invalid.items():
            found[path].extend(problems)
    notes: list[str] = []
    failed = False
    if upstream:
        failed = _check_upstreams(config, sets, found, notes, progress or NoProgress())
    problems = tuple(p for path in sorted(found) for p in found[path])
    checked = sum(len(s.loaded) + len(s.invalid) for s in sets)
    broken = sum(1 for p in found.values() if p)
    return LintResult(checked, problems, broken, tuple(notes), failed)


def repository_problems(
    work: WorkRepo, loaded: LoadedManifest, notes: str | None, *, compare_published: bool = True
) -> tuple[Problem, ...]:
    """What the fetched upstream (and the mirror's build record) say is wrong with a manifest,
    each at the line of the field: what `lint --fetch` reports, and what stops a branch in a
    pass before anything is built. `notes`: the fetched mirror notes commit."""
    from bot.core.record import BuildRecord
    from bot.git.lint import PublishedBase, upstream_findings
    from bot.git.publish import read_record
    from bot.manifest.where import places
    from bot.manifest.wording import field_name

    m = loaded.manifest
    published = None
    if compare_published:
        tip = work.mirror_branch(m.branch)
        record = read_record(work, tip, notes, m.branch) if tip else None
        if isinstance(record, BuildRecord):
            published = PublishedBase(record.base, record.base_commit)
    findings = upstream_findings(work, m, published=published)
    if not findings:
        return ()
    where = places(loaded.text, [f.loc for f in findings])
    shown = display_path(loaded.path)
    problems = [Problem(shown, *where[f.loc], field_name(f.loc), f.message) for f in findings]
    return tuple(sorted(problems, key=lambda p: (p.line, p.col)))


def _check_upstreams(
    config: Config,
    sets: list[ManifestSet],
    found: dict[Path, list[Problem]],
    notes: list[str],
    progress: Progress,
) -> bool:
    """Add the repository problems of every valid manifest; True if an upstream failed."""
    from bot.git.workrepo import WorkRepo  # plain lint loads no git at all

    by_tree: dict[str, list[LoadedManifest]] = defaultdict(list)
    for mset in sets:
        for loaded in mset.loaded:
            by_tree[loaded.manifest.tree].append(loaded)
    failed = False
    for tree, items in sorted(by_tree.items()):
        work = WorkRepo.for_tree(config.state, tree)
        try:
            with progress.step(f"fetching {tree} upstream"):
                work.fetch_upstream(config.upstream_of(tree))
        except XsabotError as exc:
            notes.append(f"{tree} upstream: {exc}; its manifests were not checked against it")
            failed = True
            continue
        compare = True
        try:
            with progress.step(f"fetching {tree} mirror"):
                work.fetch_mirror(config.mirror_of(tree), config.namespace, create=False)
        except XsabotError as exc:
            notes.append(
                f"{tree} mirror: {exc}; bases were not compared with the published branches"
            )
            compare = False
        mirror_notes = work.mirror_notes() if compare else None
        for loaded in items:
            problems = repository_problems(work, loaded, mirror_notes, compare_published=compare)
            found[loaded.path].extend(problems)
    return failed


def _groups(paths: Sequence[Path], manifests: Path) -> dict[Path, list[Path] | None]:
    """Manifests directory -> the files to read in it (None: all of it). Patch paths are
    relative to the directory a file sits in, as for `build`: the configured one, or else the
    file's own directory (a checkout of a merge request)."""
    if not paths:
        return {manifests: None}
    configured = manifests.resolve()

    def root_of(directory: Path) -> Path:
        return manifests if directory == configured else directory

    groups: dict[Path, list[Path] | None] = {}
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
        if path.is_dir():
            groups[root_of(path.resolve())] = None
    for path in paths:
        if path.is_dir():
            continue
        root = root_of(path.resolve().parent)
        if root in groups and groups[root] is None:
            continue  # its whole directory is read already
        files = groups.setdefault(root, [])
        assert files is not None
        files.append(path)
    return groups
