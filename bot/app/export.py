"""`export`: a branch as a quilt patch series for the release tarball.

From a manifest (built here, as `xsabot build` builds it) or from a branch published in the
mirror (its build record says its base and which source commit each of its commits picks).
Each patch is named after its XSA, prerequisites marked: `0001-xsa-488-x86-fix-foo.patch`,
`0003-xsa-490-prereq-x86-split-the-helper.patch`; `series` lists them in order. Applied in
order with `quilt push -a` or `patch -p1` onto the base's release tree they give exactly the
branch's tree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.app.branch import build_branch
from bot.config import Config
from bot.core.outcome import BuildResult
from bot.core.ports import NoProgress, Progress
from bot.core.record import BuildRecord
from bot.errors import SetupError, UsageError
from bot.git.export import tree_of
from bot.git.publish import read_record
from bot.git.series import Commit, commits_after, format_patches
from bot.git.workrepo import WorkRepo

_PICKED = re.compile(r"^\(cherry picked from commit ([0-9a-f]{40})\)$", re.MULTILINE)
_PATCHED = re.compile(r"^\(applied from advisory patch .* sha256 ([0-9a-f]{64})\)$", re.MULTILINE)


@dataclass(frozen=True)
class SeriesPatch:
    name: str
    commit: str
    xsa: int | None
    role: str  # "fix", "prerequisite", "patch", or "" when the commit is not the bot's


@dataclass(frozen=True)
class Series:
    branch: str
    base: str  # the base tag
    base_commit: str
    tip: str
    directory: Path
    patches: tuple[SeriesPatch, ...]


def export_manifest(
    config: Config, path: Path, directory: Path, progress: Progress | None = None
) -> Series:
    """The series of the branch `path` builds (every XSA that applies; see `build`)."""
    progress = progress or NoProgress()
    _check_empty(directory)
    branch, result = build_branch(config, path, progress=progress)
    branch.store.flush([result.tip])
    roles = _roles_of_build(result)
    with progress.step("writing the patch series"):
        return _write(
            branch.work.path,
            branch.loaded.manifest.branch,
            result.base,
            result.base_commit,
            result.tip,
            lambda c: roles.get(c.sha, (None, "")),
            directory,
        )


def export_branch(
    config: Config, tree: str, branch: str, directory: Path, progress: Progress | None = None
) -> Series:
    """The series of `branch` as published in `tree`'s mirror: its build record's base, and
    its commits up to the build (a pseudo-merge's second parent), which has the tip's tree."""
    progress = progress or NoProgress()
    if tree not in config.trees:
        raise UsageError(f"--tree {tree!r}: known trees: {', '.join(sorted(config.trees))}")
    if not branch.startswith(config.namespace):
        raise UsageError(f"--branch {branch!r} is outside the bot's namespace {config.namespace!r}")
    _check_empty(directory)
    work = WorkRepo.for_tree(config.state, tree)
    mirror = config.mirror_of(tree)
    with progress.step(f"fetching {tree} mirror"):
        work.fetch_mirror(mirror, config.namespace, create=False)
    tip = work.mirror_branch(branch)
    if tip is None:
        raise UsageError(f"no branch {branch!r} in the {tree} mirror {mirror}")
    record = read_record(work, tip, work.mirror_notes(), branch)
    if not isinstance(record, BuildRecord):
        why = "none" if record is None else record.why
        raise SetupError(f"{branch} at {tip[:12]}: no readable build record ({why})")
    if tree_of(work.path, record.build) != tree_of(work.path, tip):
        raise SetupError(
            f"{branch} at {tip[:12]} does not have the tree of its recorded build "
            f"{record.build[:12]}: moved by someone else?"
        )
    roles = _roles_of_record(record)
    with progress.step("writing the patch series"):
        return _write(
            work.path,
            branch,
            record.base,
            record.base_commit,
            record.build,
            lambda c: _role_by_message(c, roles),
            directory,
        )


def patch_name(number: int, xsa: int | None, role: str, slug: str) -> str:
    """`0001-xsa-488-x86-fix-foo.patch`; a prerequisite `0003-xsa-490-prereq-...`."""
    if xsa is None:
        return f"{number:04d}-{slug}"
    return f"{number:04d}-xsa-{xsa}-{'prereq-' if role == 'prerequisite' else ''}{slug}"


def _roles_of_build(result: BuildResult) -> dict[str, tuple[int | None, str]]:
    # An empty pick (the change already there) names the commit before it, not one of its own.
    return {
        pick.commit: (o.xsa, pick.role)
        for o in result.outcomes
        if o.blocked is None
        for pick in o.picks
        if not pick.empty
    }


def _roles_of_record(record: BuildRecord) -> dict[str, tuple[int | None, str]]:
    roles: dict[str, tuple[int | None, str]] = {}
    for x in record.xsas:
        roles |= {c: (x.xsa, "prerequisite") for c in x.prerequisites}
        roles |= {c: (x.xsa, "fix") for c in x.commits}
        roles |= {p: (x.xsa, "patch") for p in x.patches}
    return roles


def _role_by_message(
    commit: Commit, roles: Mapping[str, tuple[int | None, str]]
) -> tuple[int | None, str]:
    """Which entry a commit of the build picks: its last provenance line names the source
    commit (or the advisory patch's sha256) the bot wrote it from."""
    found = _PICKED.findall(commit.message) + _PATCHED.findall(commit.message)
    return roles.get(found[-1], (None, "")) if found else (None, "")


def _check_empty(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"--series {directory}: exists and is not an empty directory")


def _write(
    repo: Path,
    branch: str,
    base: str,
    base_commit: str,
    tip: str,
    role_of: Callable[[Commit], tuple[int | None, str]],
    directory: Path,
) -> Series:
    commits = commits_after(repo, base_commit, tip)
    texts = format_patches(repo, base_commit, tip)
    patches: list[SeriesPatch] = []
    directory.mkdir(parents=True, exist_ok=True)
    for commit in commits:
        if commit.sha not in texts:  # it changes nothing: no patch
            continue
        slug, data = texts[commit.sha]
        xsa, role = role_of(commit)
        name = patch_name(len(patches) + 1, xsa, role, slug)
        (directory / name).write_bytes(data)
        patches.append(SeriesPatch(name, commit.sha, xsa, role))
    header = [
        f"# {branch} as patches onto {base} ({base_commit}), giving {tip}",
        "# apply onto the release tree in order: quilt push -a, or patch -p1 < each file",
    ]
    (directory / "series").write_text("\n".join([*header, *(p.name for p in patches)]) + "\n")
    return Series(branch, base, base_commit, tip, directory, tuple(patches))
